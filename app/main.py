"""create_app(): middleware, routers, exception handlers — nothing else."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import api_router, page_router
from app.core import cache, metrics
from app.core.config import Settings, get_settings
from app.core.db import make_engine
from app.core.errors import ProblemError, document_problems, install_problem_handlers
from app.core.http import CachedReads
from app.core.logging import configure_logging
from app.core.process import tune_garbage_collection
from app.core.templating import page_templates
from app.email import service as email_service
from app.signatures.batch import SigningBatcher
from app.signatures.fastpath import FastSigning


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
]


class SecurityHeaders:
    """Adds security headers a response has not set. Plain ASGI: @app.middleware("http")
    (BaseHTTPMiddleware) costs a task group and a stream per request, ~10% of a signature."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.LOG_LEVEL)
    engine = make_engine(settings.DATABASE_URL, pool_size=settings.DATABASE_POOL_SIZE)
    # Public reads (cached_read) may come from a replica; everything else from the primary.
    read_engine = (
        make_engine(settings.DATABASE_READ_URL, pool_size=settings.DATABASE_POOL_SIZE)
        if settings.DATABASE_READ_URL
        else engine
    )

    signing = SigningBatcher(engine, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.ENVIRONMENT == "production":  # (tests create many apps in one process)
            tune_garbage_collection()
        yield
        signing.stop()
        engine.dispose()
        read_engine.dispose()

    app = FastAPI(
        title="Chorus",
        version="0.1.0",
        summary="Advocacy campaigns and petitions: sign with e-mail confirmation, count, deliver.",
        lifespan=lifespan,
        # Nothing Chorus accepts is larger; a bigger body is refused before it is read.
        max_body_size=settings.MAX_BODY_BYTES,
        docs_url="/docs",
        openapi_url="/api/v1/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.read_engine = read_engine
    app.state.signing = signing
    install_problem_handlers(app)
    document_problems(app)

    json_http_handler = app.exception_handlers[StarletteHTTPException]
    json_problem_handler = app.exception_handlers[ProblemError]

    async def html_or_problem(request: Request, exc: Any) -> Response:
        # Pages answer errors with a page; the API (and non-browser clients) with problem JSON.
        if _wants_html(request):
            status = exc.status if isinstance(exc, ProblemError) else int(exc.status_code)
            return page_templates().TemplateResponse(
                request,
                "error.html",
                {"locale": "en", "locales": [], "status": status},
                status_code=status,
            )
        handler = json_problem_handler if isinstance(exc, ProblemError) else json_http_handler
        response = handler(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(StarletteHTTPException, html_or_problem)
    app.add_exception_handler(ProblemError, html_or_problem)

    app.add_middleware(FastSigning)
    app.add_middleware(CachedReads)  # inside SecurityHeaders: cached answers get them too
    app.add_middleware(SecurityHeaders)
    app.add_middleware(metrics.RequestTimer)  # outermost: times everything inside

    @app.get("/healthz", include_in_schema=False)
    def health() -> JSONResponse:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", include_in_schema=False)
    def metrics_page(request: Request) -> Response:
        metrics.check_scraper(request, settings)

        def gauges() -> list[metrics.Gauge]:
            with Session(engine) as session:
                return email_service.outbox_gauges(session)

        # Several scrapers (or processes) in one moment read the database once.
        return metrics.metrics_response(
            cache.cached(("metrics-gauges",), settings.CACHE_SECONDS, gauges)
        )

    app.include_router(api_router)
    app.include_router(page_router)
    logging.getLogger(__name__).debug("app created for %s", settings.ENVIRONMENT)
    return app
