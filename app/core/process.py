"""Settings of a long-running server or worker process."""

from __future__ import annotations

import gc
import os


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
