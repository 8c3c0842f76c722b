"""The real worker loop (`chorus worker`) running in a thread while a test goes on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine

from app.core.config import Settings
from app.email.smtp import mail_config
from app.email.worker import OutboxWorker


@contextmanager
def worker_running(settings: Settings, engine: Engine, **overrides: Any) -> Iterator[None]:
    """Run OutboxWorker.run against the test SMTP server until the block ends (polling every
    50 ms when idle, so retries due soon are taken soon)."""
    worker_settings = settings.model_copy(update={"WORKER_POLL_SECONDS": 0.05, **overrides})
    worker = OutboxWorker(
        worker_settings,
        engine,
        mail_config(worker_settings, server=settings.MAIL_SERVER or "", port=settings.MAIL_PORT),
    )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(stop),))
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()
