"""One bench run at a time on a machine: two would drop each other's database and share the
cores, so each figure would be wrong."""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = Path(tempfile.gettempdir()) / "chorus-bench.lock"


@contextmanager
def one_run_at_a_time() -> Iterator[None]:
    with LOCK.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("waiting for another bench run on this machine to finish...", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield
