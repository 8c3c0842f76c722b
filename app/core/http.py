"""JSON responses for sync endpoints that hold a database transaction.

FastAPI validates a returned model against `response_model` in its thread pool *before* the
request's session dependency commits. Under load every pool thread can be busy waiting on a lock
that this very request holds, so the validation never gets a thread and the commit never comes
(a deadlock until timeouts fire). An endpoint that returns a ready `Response` skips that step,
so API endpoints build their JSON here and keep `response_model=` only for the OpenAPI schema.
`tests/test_routes.py` checks every sync endpoint does so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core import cache
from app.core.csp import page_policy
from app.core.headers import missing, security_headers
from app.core.i18n import SUPPORTED_LOCALES, parse_accept_language
from app.core.metrics import ROUTE_KEY

# How long a shared cache may go on serving a public read while it fetches a fresh copy.
STALE_SECONDS = 60
# The longest `?lang=` the API accepts (longer is a 422 from the route, never a cached answer).
LANG_MAX_LENGTH = 35


def json_response(model: BaseModel, status_code: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status_code)


def cache_key(path: str, query: str, accept_language: str) -> tuple[str, ...] | None:
    """The response cache's key for a public read: its path and what picks its language, and
    nothing else of the request, so that links carrying tracking parameters (`?fbclid=`,
    `?utm_source=`) or any spelling of one language preference share one entry. None when the
    request must reach its route (a `lang` the API refuses).

    The API's language is `?lang=` alone, exactly as given (the petition's default unless it is
    one of its languages, which are among SUPPORTED_LOCALES). A page negotiates `?lang=`, then
    Accept-Language, among the petition's languages (i18n.negotiate): its language is the first
    of the preferences below that the petition has, so these preferences are its key.
    """
    lang = None
    if "lang" in query:  # (most requests have no query at all)
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name == "lang":
                lang = value  # the last one, as the route reads it
    if path.startswith("/api/"):
        if lang is not None and len(lang) > LANG_MAX_LENGTH:
            return None
        return ("response", path, lang if lang in SUPPORTED_LOCALES else "")
    return (
        "response",
        path,
        _page_languages(lang.strip().lower() if lang else "", accept_language),
    )


@lru_cache(maxsize=1024)
def _page_languages(lang: str, accept_language: str) -> str:
    """A page's languages in order of preference (its cache key's part): browsers send a few
    distinct Accept-Language values, parsed once each rather than on every read."""
    wanted = [lang.split("-")[0]] if lang else []
    asked = [*wanted, *parse_accept_language(accept_language)]
    return ",".join(dict.fromkeys(tag for tag in asked if tag in SUPPORTED_LOCALES))


def _cache_key(request: Request) -> tuple[str, ...] | None:
    return cache_key(
        request.url.path, request.url.query, request.headers.get("accept-language", "")
    )


def public_headers(path: str, ttl: float) -> dict[str, str]:
    """Headers of a public read: shared caches (a CDN, the browser) may keep it as long as this
    server does, and serve it a while longer while fetching a fresh copy; a page's language
    comes from Accept-Language, so they must keep one copy per value of it."""
    seconds = math.ceil(ttl)
    headers = {
        "Cache-Control": f"public, max-age={seconds}, stale-while-revalidate={STALE_SECONDS}"
        if seconds
        else "public, no-cache"
    }
    if not path.startswith("/api/"):
        headers["Vary"] = "Accept-Language"
    return headers


def _from_cache(entry: tuple[int, bytes, list[tuple[bytes, bytes]]]) -> Response:
    status, body, headers = entry
    response = Response(content=body, status_code=status)
    response.raw_headers = [*headers, (b"content-length", str(len(body)).encode())]
    return response


def cached_response(request: Request, ttl: float, build: Callable[[], Response]) -> Response:
    """A public GET response, reused for `ttl` seconds by this server process (app/core/cache).

    Keyed by path and language (cache_key). Only for responses that are the same for
    everyone: petition pages and public counts; they say so to shared caches (public_headers).
    Stored with the security headers the response would get on its way out (CachedReads
    answers from here before SecurityHeaders).
    """

    def render() -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        response = build()
        response.headers.update(public_headers(request.url.path, ttl))
        headers = [(k, v) for k, v in response.raw_headers if k != b"content-length"]
        policy = page_policy(request.app.state.settings)
        headers += missing(headers, security_headers(policy))
        return response.status_code, bytes(response.body), headers

    key = _cache_key(request)
    return _from_cache(cache.cached(key, ttl if key else 0, render))


async def cached_read(
    request: Request, ttl: float, build: Callable[[Session], Response]
) -> Response:
    """cached_response for an async endpoint: a fresh copy is answered on the event loop,
    with no thread, session or connection; only a miss builds it (in the thread pool, with a
    read-only session of its own, on the read replica when DATABASE_READ_URL names one).
    Public reads are most of a surge's requests."""
    key = _cache_key(request)
    if ttl > 0 and key is not None:
        found = cache.lookup(key)
        if found is not None and (found[1] or cache.refreshing(key)):
            return _from_cache(found[0])  # fresh, or being refreshed by another request

    def miss() -> Response:
        with Session(request.app.state.read_engine, expire_on_commit=False) as session:
            return cached_response(request, ttl, lambda: build(session))

    return await run_in_threadpool(miss)


class CachedReads:
    """Answers a GET from the response cache, when cached_read has a fresh copy, before the
    application: before Starlette's and FastAPI's own middleware, Chorus's security headers
    (the entry carries them) and the router.

    Only responses built by cached_read (public pages and counts, the same for everyone) are in
    that cache, so this changes no answer; it skips the layers inside it, which were most of
    the server's CPU for a cached read (see README, Performance).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            accept_language = ""
            for name, value in scope["headers"]:
                if name == b"accept-language":
                    accept_language = value.decode("latin-1")
                    break
            key = cache_key(
                scope.get("root_path", "") + scope["path"],
                scope["query_string"].decode("latin-1"),
                accept_language,
            )
            found = cache.lookup(key) if key is not None else None
            if found is not None and (found[1] or cache.refreshing(key)):
                scope[ROUTE_KEY] = "(cached read)"
                status, body, headers = found[0]
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [*headers, (b"content-length", str(len(body)).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
