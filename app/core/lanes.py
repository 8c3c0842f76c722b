"""The admin API in a lane of its own, so that a burst of admin requests cannot starve the public.

Measured before: 200 concurrent admin PATCHes of one petition took every thread of the pool
FastAPI runs sync endpoints in (40) and every database connection; they queued on the
petition's row lock, 35-76 of them failed after 30 s waiting for a connection (500), and public
pages waited up to 31 s meanwhile.

Now each server process lets at most ADMIN_MAX_CONCURRENT_REQUESTS admin requests run at a time.
The others wait their turn on the event loop (a waiting request holds no thread and no
connection) for up to ADMIN_QUEUE_SECONDS, then get 503 with Retry-After. Admin requests also
use a database pool of their own (ADMIN_MAX_CONCURRENT_REQUESTS connections, see
app/core/deps.py), so public requests never wait for a connection an admin holds, and admins
can still pause a petition while a public surge uses every public connection. The limit is per
process and keeps no state between requests: run more processes for more admin throughput.
"""

from __future__ import annotations

import asyncio
import math
import weakref

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import busy_problem

ADMIN_PREFIX = "/api/v1/admin/"
# The OSDI API (app/osdi/) is the admin API as other tools read it: the same lane and pool.
OSDI_PREFIX = "/api/osdi/"


def is_admin_path(path: str) -> bool:
    return path.startswith((ADMIN_PREFIX, OSDI_PREFIX)) or path in (
        ADMIN_PREFIX.rstrip("/"),
        OSDI_PREFIX.rstrip("/"),
    )


class AdminLane:
    """At most `limit` admin API requests at a time; the rest wait up to `wait` seconds."""

    def __init__(self, app: ASGIApp, *, limit: int, wait: float) -> None:
        self.app = app
        self.limit = limit
        self.wait = wait
        # One semaphore per event loop (the tests start several loops for one app).
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        turns = self._turns.get(loop)
        if turns is None:
            turns = self._turns[loop] = asyncio.Semaphore(self.limit)
        return turns

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_admin_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        turns = self._semaphore()
        try:
            await asyncio.wait_for(turns.acquire(), timeout=self.wait)
        except TimeoutError:
            response = busy_problem(
                Request(scope),
                retry_after=max(1, math.ceil(self.wait / 2)),
                detail="Too many admin requests at once: nothing was done. Try again shortly.",
            )
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            turns.release()
