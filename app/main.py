"""create_app(): middleware, routers, exception handlers — nothing else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlmodel import Session

from app.api import api_router, page_router
from app.console.rendering import STATIC_DIR, STATIC_URL
from app.core import cache, metrics
from app.core.application import Application
from app.core.config import ROOT, Settings, get_settings
from app.core.csp import page_policy
from app.core.db import make_engine
from app.core.docs import install_docs
from app.core.error_pages import install_error_pages, install_slash_redirects
from app.core.errors import document_problems, install_problem_handlers
from app.core.headers import SecurityHeaders, secure_unexpected_errors, security_headers
from app.core.http import CachedReads
from app.core.lanes import AdminLane
from app.core.logging import RequestLog, configure_logging
from app.core.process import tune_garbage_collection
from app.email import outbox
from app.signatures.batch import SigningBatcher
from app.signatures.fastpath import FastSigning

OPENAPI_URL = "/api/v1/openapi.json"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    engine = make_engine(
        settings.DATABASE_URL,
        pool_size=settings.DATABASE_POOL_SIZE,
        pool_timeout=settings.DATABASE_POOL_TIMEOUT,
    )
    admin_engine = make_engine(  # the admin API's own pool (app/core/lanes.py)
        settings.DATABASE_URL,
        pool_size=settings.ADMIN_MAX_CONCURRENT_REQUESTS,
        pool_timeout=settings.DATABASE_POOL_TIMEOUT,
    )
    # Public reads (cached_read) may come from a replica; everything else from the primary.
    read_engine = (
        make_engine(
            settings.DATABASE_READ_URL,
            pool_size=settings.DATABASE_POOL_SIZE,
            pool_timeout=settings.DATABASE_POOL_TIMEOUT,
        )
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
        admin_engine.dispose()
        if read_engine is not engine:
            read_engine.dispose()

    app = Application(
        title="Chorus",
        version="0.1.0",
        summary="Advocacy campaigns and petitions: sign with e-mail confirmation, count, deliver.",
        lifespan=lifespan,
        # Nothing Chorus accepts is larger; a bigger body is refused before it is read.
        max_body_size=settings.MAX_BODY_BYTES,
        docs_url=None,  # served from this server, or not at all: app/core/docs.py
        redoc_url=None,
        openapi_url=OPENAPI_URL,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.admin_engine = admin_engine
    app.state.read_engine = read_engine
    app.state.signing = signing
    install_problem_handlers(app)
    document_problems(app)
    install_error_pages(app)
    # Answers to unexpected errors are made outside every middleware: they get the headers here.
    secure_unexpected_errors(app, content_security_policy=page_policy(settings))
    install_slash_redirects(app)

    app.add_middleware(
        AdminLane,
        limit=settings.ADMIN_MAX_CONCURRENT_REQUESTS,
        wait=settings.ADMIN_QUEUE_SECONDS,
    )
    app.add_middleware(SecurityHeaders, content_security_policy=page_policy(settings))
    # Outside Starlette's error middleware and FastAPI's own (app/core/application.py):
    app.add_outer_middleware(  # valid signatures answered before all the rest
        FastSigning, application=app, security_headers=security_headers(page_policy(settings))
    )
    app.add_outer_middleware(metrics.RequestTimer)  # times everything inside
    app.add_outer_middleware(RequestLog, settings=settings)  # every request, its ID, 500s too
    # Fresh cached reads answered before all the rest (with their ID and log line, counted):
    app.add_outer_middleware(CachedReads, settings=settings)

    @app.get("/healthz", include_in_schema=False)
    def health() -> JSONResponse:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok"})

    # Before the routers: the console answers every other /admin address itself.
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="console-static")
    if settings.docs_enabled:
        install_docs(app, openapi_url=OPENAPI_URL)
    app.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")

    @app.get("/metrics", include_in_schema=False)
    def metrics_page(request: Request) -> Response:
        metrics.check_scraper(request, settings)

        def gauges() -> list[metrics.Gauge]:
            with Session(engine) as session:
                return outbox.outbox_gauges(session)

        # Several scrapers (or processes) in one moment read the database once.
        return metrics.metrics_response(
            cache.cached(("metrics-gauges",), settings.CACHE_SECONDS, gauges)
        )

    app.include_router(api_router)
    app.include_router(page_router)
    logging.getLogger(__name__).debug("app created for %s", settings.ENVIRONMENT)
    return app
