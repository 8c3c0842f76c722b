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
_refreshing: set[Hashable] = set()
_MAX_ENTRIES = 10_000


def lookup(key: Hashable) -> tuple[Any, bool] | None:
    """(value, fresh) under `key`, or None when there is none at all."""
    with _lock:
        hit = _entries.get(key)
    if hit is None:
        return None
    return hit[1], hit[0] > time.monotonic()


def refreshing(key: Hashable) -> bool:
    """Whether some thread of this process is rebuilding the value under `key`."""
    with _lock:
        return key in _refreshing


def cached(key: Hashable, ttl: float, build: Callable[[], T]) -> T:
    """The value under `key` if younger than `ttl` seconds, else `build()` (stored).

    Once it is older, one caller rebuilds it while the others keep getting the old value for
    that moment: a surge of readers never rebuilds the same page all at once (a stampede that
    otherwise turns every expiry into dozens of identical database queries).
    """
    if ttl <= 0:
        return build()
    found = lookup(key)
    with _lock:
        claimed = key not in _refreshing
        if found is not None and (found[1] or not claimed):
            value: T = found[0]
            return value
        _refreshing.add(key)
    try:
        value = build()
        with _lock:
            if len(_entries) >= _MAX_ENTRIES:  # many slugs or languages: start afresh
                _entries.clear()
            _entries[key] = (time.monotonic() + ttl, value)
    finally:
        if claimed:
            with _lock:
                _refreshing.discard(key)
    return value


def clear() -> None:
    with _lock:
        _entries.clear()
        _refreshing.clear()
