"""A tiny per-process cache with a time-to-live, for data the public reads constantly.

Each server process keeps its own for at most CACHE_SECONDS (default 1 s): a count or a petition
change shows up within that time on every server, with no shared state between servers.
0 turns it off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_entries: dict[Hashable, tuple[float, Any]] = {}
_MAX_ENTRIES = 10_000


def cached(key: Hashable, ttl: float, build: Callable[[], T]) -> T:
    """The value under `key` if younger than `ttl` seconds, else `build()` (stored)."""
    if ttl <= 0:
        return build()
    now = time.monotonic()
    with _lock:
        hit = _entries.get(key)
    if hit is not None and hit[0] > now:
        value: T = hit[1]
        return value
    value = build()
    with _lock:
        if len(_entries) >= _MAX_ENTRIES:  # many slugs or languages: start afresh
            _entries.clear()
        _entries[key] = (now + ttl, value)
    return value


def peek(key: Hashable) -> Any | None:
    """The value under `key` if it is still fresh, else None (nothing is built)."""
    with _lock:
        hit = _entries.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    return None


def clear() -> None:
    with _lock:
        _entries.clear()
