"""JSON responses for sync endpoints that hold a database transaction.

FastAPI validates a returned model against `response_model` in its thread pool *before* the
request's session dependency commits. Under load every pool thread can be busy waiting on a lock
that this very request holds, so the validation never gets a thread and the commit never comes
(a deadlock until timeouts fire). An endpoint that returns a ready `Response` skips that step,
so API endpoints build their JSON here and keep `response_model=` only for the OpenAPI schema.
`tests/test_routes.py` checks every sync endpoint does so.
"""

from __future__ import annotations

import gzip
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core import cache, metrics
from app.core.config import Settings
from app.core.csp import page_policy
from app.core.headers import missing, security_headers
from app.core.i18n import SUPPORTED_LOCALES, parse_accept_language
from app.core.logging import ACCESS, log_access, request_id_for

# How long a shared cache may go on serving a public read while it fetches a fresh copy.
STALE_SECONDS = 60
# The longest `?lang=` the API accepts (longer is a 422 from the route, never a cached answer).
LANG_MAX_LENGTH = 35
# Cached answers at least this long are also kept gzip-compressed, when that makes them shorter.
GZIP_MIN_BYTES = 1024
_COMPRESSIBLE = (b"text/", b"application/json", b"application/problem+json", b"image/svg+xml")

Headers = list[tuple[bytes, bytes]]


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


@lru_cache(maxsize=256)
def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header accepts gzip (RFC 9110, 12.5.3): named, or covered by
    `*`, with a quality above 0. Browsers send a few distinct values, parsed once each."""
    named = anything = None
    for part in accept_encoding.split(",")[:20]:
        coding, _, params = part.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            named = quality
        elif coding == "*":
            anything = quality
    chosen = named if named is not None else anything
    return chosen is not None and chosen > 0


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A public read as the cache keeps it: its status, and its headers and body as sent,
    gzip-compressed too when that is worth it (each with its Content-Length, so that a hit
    formats nothing)."""

    status: int
    plain: tuple[Headers, bytes]
    compressed: tuple[Headers, bytes] | None

    @classmethod
    def of(cls, status: int, headers: Headers, body: bytes) -> CachedAnswer:
        content_type = next((v for k, v in headers if k == b"content-type"), b"")
        compressed = None
        if (
            status == 200
            and len(body) >= GZIP_MIN_BYTES
            and content_type.startswith(_COMPRESSIBLE)
            and not any(k == b"content-encoding" for k, _ in headers)
        ):
            packed = gzip.compress(body, mtime=0)
            if len(packed) < len(body):
                # Shared caches keep one copy per Accept-Encoding (and per Accept-Language).
                vary = [v for k, v in headers if k == b"vary"]
                headers = [(k, v) for k, v in headers if k != b"vary"]
                headers.append((b"vary", b", ".join([*vary, b"Accept-Encoding"])))
                compressed = (
                    [*headers, (b"content-encoding", b"gzip"), _length(packed)],
                    packed,
                )
        return cls(status, ([*headers, _length(body)], body), compressed)

    def answer(self, accept_encoding: str) -> tuple[Headers, bytes]:
        """The headers and body for a request with this Accept-Encoding."""
        if self.compressed is not None and accept_encoding and accepts_gzip(accept_encoding):
            return self.compressed
        return self.plain


def _length(body: bytes) -> tuple[bytes, bytes]:
    return (b"content-length", str(len(body)).encode())


def _from_cache(entry: CachedAnswer, request: Request) -> Response:
    headers, body = entry.answer(request.headers.get("accept-encoding", ""))
    response = Response(content=body, status_code=entry.status)
    response.raw_headers = list(headers)
    return response


def cached_response(request: Request, ttl: float, build: Callable[[], Response]) -> Response:
    """A public GET response, reused for `ttl` seconds by this server process (app/core/cache).

    Keyed by path and language (cache_key). Only for responses that are the same for
    everyone: petition pages and public counts; they say so to shared caches (public_headers).
    Stored with the security headers the response would get on its way out (CachedReads
    answers from here before SecurityHeaders), and gzip-compressed once for the clients that
    accept it (browsers do: a petition page is a fifth of its size, and nothing is compressed
    per request). These answers hold nothing secret and nothing of the request, so
    compression tells an attacker nothing (BREACH needs both).
    """

    def render() -> CachedAnswer:
        response = build()
        response.headers.update(public_headers(request.url.path, ttl))
        headers = [(k, v) for k, v in response.raw_headers if k != b"content-length"]
        policy = page_policy(request.app.state.settings)
        headers += missing(headers, security_headers(policy))
        return CachedAnswer.of(response.status_code, headers, bytes(response.body))

    key = _cache_key(request)
    return _from_cache(cache.cached(key, ttl if key else 0, render), request)


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
            return _from_cache(found[0], request)  # fresh, or being refreshed by another

    def miss() -> Response:
        with Session(request.app.state.read_engine, expire_on_commit=False) as session:
            return cached_response(request, ttl, lambda: build(session))

    return await run_in_threadpool(miss)


class CachedReads:
    """Answers a GET from the response cache, when cached_read has a fresh copy, before
    anything else: before the request log and the request timer, Starlette's and FastAPI's own
    middleware, Chorus's security headers (the entry carries them) and the router.

    Only responses built by cached_read (public pages and counts, the same for everyone) are in
    that cache, so this changes no answer; it skips the layers inside it, which were most of
    the server's CPU for a cached read (see README, Performance). What the outer layers give
    every request, it gives these too: the request's ID in X-Request-ID and the access log's
    line (app/core/logging.py). They are counted (chorus_http_cached_reads_total), not timed
    by route: each takes a few microseconds of the server's own time.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.count = metrics.LaterCount(metrics.CACHED_READS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            started = time.perf_counter()
            accept_language = accept_encoding = ""
            given_id = None
            for name, value in scope["headers"]:
                if name == b"accept-language":
                    accept_language = value.decode("latin-1")
                elif name == b"accept-encoding":
                    accept_encoding = value.decode("latin-1")
                elif name == b"x-request-id":
                    given_id = value.decode("latin-1")
            key = cache_key(
                scope.get("root_path", "") + scope["path"],
                scope["query_string"].decode("latin-1"),
                accept_language,
            )
            found = cache.lookup(key) if key is not None else None
            if found is not None and (found[1] or cache.refreshing(key)):
                entry: CachedAnswer = found[0]
                headers, body = entry.answer(accept_encoding)
                rid = request_id_for(given_id)
                await send(
                    {
                        "type": "http.response.start",
                        "status": entry.status,
                        "headers": [*headers, (b"x-request-id", rid.encode())],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                self.count.add()
                if ACCESS.isEnabledFor(logging.INFO):
                    log_access(
                        self.settings, scope, entry.status, time.perf_counter() - started, rid
                    )
                return
        await self.app(scope, receive, send)
