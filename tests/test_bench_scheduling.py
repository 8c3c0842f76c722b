"""The bench starts each server, worker and wrk in a session of its own, and gives the workers'
sessions a lower priority (bench/scheduling.py): a worker started so really runs in a lower
scheduling group, where the kernel has them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.scheduling import autogroups, lower_group


@pytest.mark.skipif(not autogroups(), reason="this kernel has no autogroup scheduling")
def test_a_process_in_a_session_of_its_own_gets_a_lower_group_priority() -> None:
    process = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        group = Path(f"/proc/{process.pid}/autogroup")
        # The caller's group: "" where it is the one every process starts in (a tree that never
        # called setsid, as under some CI runners: the kernel shows that group as nothing).
        mine = Path("/proc/self/autogroup").read_text()
        own = group.read_text()
        assert own.startswith("/autogroup-") and own != mine  # a group of its own
        shown = lower_group(process.pid, 10)
        assert shown.split()[1:] == ["nice", "10"] and group.read_text().strip() == shown
        assert Path("/proc/self/autogroup").read_text() == mine  # the caller's is untouched
    finally:
        process.kill()
        process.wait()
