"""Settings of a long-running server or worker process."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

try:  # (uvicorn's event loop, installed with uvicorn[standard] where it runs: not on Windows)
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]

T = TypeVar("T")


def tune_garbage_collection() -> None:
    """Keep what was loaded at startup (modules, routes, templates, lives as long as the process)
    out of the garbage collector's generations, and collect the young generation less often, so
    that a surge is not paused by collections walking the whole heap (in the benchmark, p99
    latency went from ~160 ms to ~50 ms)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def lower_priority(niceness: int) -> None:
    """Run this process `niceness` steps below its parent's CPU priority (Unix nice; 0: as it
    is). The mail worker does, where it shares cores with the web servers: in a surge the
    signers wait for nothing the worker does, while their confirmation e-mails may follow a
    little later (the queue is drained as soon as the cores are free again)."""
    if niceness > 0 and hasattr(os, "nice"):
        os.nice(niceness)


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main) on uvloop where it is installed, the event loop uvicorn gives the web
    servers: the mail worker spends most of its time in its loop, four SMTP replies a message,
    and uvloop's transports and scheduling cost about a third less CPU per message than
    asyncio's own (210 against 300 us per message to the bench's sink, same client code)."""
    if uvloop is not None:
        return uvloop.run(main)
    return asyncio.run(main)
