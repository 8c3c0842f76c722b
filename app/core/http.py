"""JSON responses for sync endpoints that hold a database transaction.

FastAPI validates a returned model against `response_model` in its thread pool *before* the
request's session dependency commits. Under load every pool thread can be busy waiting on a lock
that this very request holds, so the validation never gets a thread and the commit never comes
(a deadlock until timeouts fire). An endpoint that returns a ready `Response` skips that step,
so API endpoints build their JSON here and keep `response_model=` only for the OpenAPI schema.
`tests/test_routes.py` checks every sync endpoint does so.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from app.core import cache


def json_response(model: BaseModel, status_code: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status_code)


def cached_response(request: Request, ttl: float, build: Callable[[], Response]) -> Response:
    """A public GET response, reused for `ttl` seconds by this server process (app/core/cache).

    Keyed by path, query and Accept-Language (which picks the language). Only for responses
    that are the same for everyone: petition pages and public counts.
    """
    key = (
        "response",
        request.url.path,
        request.url.query,
        request.headers.get("accept-language", "")[:100],
    )

    def render() -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        response = build()
        headers = [(k, v) for k, v in response.raw_headers if k != b"content-length"]
        return response.status_code, bytes(response.body), headers

    status, body, headers = cache.cached(key, ttl, render)
    response = Response(content=body, status_code=status)
    response.raw_headers = [*headers, (b"content-length", str(len(body)).encode())]
    return response
