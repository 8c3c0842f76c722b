"""The FastAPI application class, with middleware that can stand outside FastAPI itself."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send


class Application(FastAPI):
    """FastAPI with outer middleware (`add_outer_middleware`): layers that run before the
    application itself, i.e. before FastAPI's per-request telemetry check, Starlette's
    ServerErrorMiddleware and FastAPI's body limit, which wrap every `add_middleware` layer.

    Chorus's request log stands there, so that a 500 answer carries its request ID and is
    logged as a 500, and so do the answers of cached public reads, which need none of those
    layers: they were half of the server's CPU for such a read (app/core/http.CachedReads).
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.outer_middleware: list[Middleware] = []
        self.outer_stack: ASGIApp | None = None

    def add_outer_middleware(self, middleware: Any, **options: Any) -> None:
        """Like add_middleware: the last one added is the outermost."""
        if self.outer_stack is not None:
            raise RuntimeError("Cannot add middleware after an application has started")
        self.outer_middleware.insert(0, Middleware(middleware, **options))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.outer_stack is None:
            app: ASGIApp = super().__call__
            for cls, args, kwargs in reversed(self.outer_middleware):
                app = cls(app, *args, **kwargs)
            self.outer_stack = app
        await self.outer_stack(scope, receive, send)
