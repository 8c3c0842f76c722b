"""The mail worker yields the CPU to the web servers it shares cores with (WORKER_NICENESS)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from app.core.config import Settings
from app.email.devmailbox import free_port
from tests.conftest import ROOT
from tests.processes import CHORUS, chorus_env, stop

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


def niceness(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])  # (stat's 19th field; the pid and the command are before the ")")


@pytest.mark.parametrize(("setting", "expected"), [(None, 10), ("3", 3), ("0", 0)])
def test_a_worker_runs_below_the_servers_priority(
    settings: Settings, setting: str | None, expected: int
) -> None:
    env = chorus_env(settings, **({"WORKER_NICENESS": setting} if setting else {}))
    port = free_port()
    worker = subprocess.Popen([*CHORUS, "worker", "--health-port", str(port)], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:  # its health port answers once it has set its priority
            assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker did not start"
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert niceness(worker.pid) == min(os.nice(0) + expected, 19)
    finally:
        stop(worker)
