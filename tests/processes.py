"""Chorus servers and workers started as separate processes, as a deployment starts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from app.core.config import Settings
from app.email.devmailbox import free_port
from tests.conftest import ROOT, TEST_SECRET

CHORUS = [sys.executable, "-m", "app.cli"]


def chorus_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The test database and SMTP server, for a `chorus` process (no other Chorus setting)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("DATABASE_", "MAIL_", "PUBLIC_", "SECRET_", "ENVIRONMENT", "PROMETHEUS", "METRICS_")
        )
    }
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "ENVIRONMENT": "test",
            "DATABASE_URL": settings.DATABASE_URL,
            "SECRET_KEY": TEST_SECRET,
            "MAIL_SERVER": settings.MAIL_SERVER or "",
            "MAIL_PORT": str(settings.MAIL_PORT),
            "MAIL_FROM": settings.MAIL_FROM,
            "LOG_LEVEL": "WARNING",
            "WORKER_POLL_SECONDS": "0.1",
            **extra,
        }
    )
    return env


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def servers(env: dict[str, str], count: int = 1, *, workers: int = 1) -> Iterator[list[Server]]:
    """`count` separately started `chorus serve` processes on free ports, each with `workers`
    server processes; stopped (SIGTERM, then SIGKILL) afterwards."""
    started: list[Server] = []
    try:
        for _ in range(count):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            process = subprocess.Popen(
                [*CHORUS, "serve", "--port", str(port), "--workers", str(workers)],
                env={**env, "PUBLIC_BASE_URL": url},
                cwd=ROOT,
            )
            started.append(Server(url, process))
        for server in started:
            wait_for(f"{server.url}/healthz", server.process)
        yield started
    finally:
        stop(*(server.process for server in started))


@contextmanager
def workers(env: dict[str, str], count: int = 1, **options: str) -> Iterator[list[int]]:
    """`count` `chorus worker` processes (options as --name value); yields their health ports
    when `health_port` is among the options ("free": a free port each)."""
    processes, ports = [], []
    try:
        for _ in range(count):
            args = []
            for name, value in options.items():
                if name == "health_port" and value == "free":
                    value = str(free_port())
                    ports.append(int(value))
                args += [f"--{name.replace('_', '-')}", value]
            processes.append(subprocess.Popen([*CHORUS, "worker", *args], env=env, cwd=ROOT))
        yield ports
    finally:
        stop(*processes)


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
