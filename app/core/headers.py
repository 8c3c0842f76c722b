"""The security headers every Chorus response gets unless it sets its own."""

from __future__ import annotations

import inspect

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    # Nothing is stored by a browser or a shared cache unless its route says it may: tokened
    # pages and personal answers must never be, and public reads say so (core/http.py).
    (b"cache-control", b"private, no-store"),
]


def _may_be_framed(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a response's own Content-Security-Policy lets some sites frame it (the embeddable
    sign form): then it gets no X-Frame-Options, whose DENY would refuse them too."""
    return any(
        name.lower() == b"content-security-policy"
        and b"frame-ancestors" in value
        and b"frame-ancestors 'none'" not in value
        for name, value in headers
    )


def security_headers(content_security_policy: str) -> list[tuple[bytes, bytes]]:
    """Every security header, with the page policy given."""
    return [
        *SECURITY_HEADERS,
        (b"content-security-policy", content_security_policy.encode("latin-1")),
    ]


def missing(
    headers: list[tuple[bytes, bytes]], wanted: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The headers of `wanted` that a response with `headers` has not set itself."""
    present = {name.lower() for name, _ in headers}
    if _may_be_framed(headers):
        present.add(b"x-frame-options")  # (there is no "allow these sites" value)
    return [(name, value) for name, value in wanted if name not in present]


def sending_with(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    """`send`, adding to the response the headers of `headers` it has not set itself."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            given = message.get("headers", [])
            message = {**message, "headers": [*given, *missing(given, headers)]}
        await send(message)

    return send_with_headers


class SecurityHeaders:
    """Adds security headers a response has not set. Plain ASGI: @app.middleware("http")
    (BaseHTTPMiddleware) costs a task group and a stream per request, ~10% of a signature."""

    def __init__(self, app: ASGIApp, *, content_security_policy: str) -> None:
        self.app = app
        self.headers = security_headers(content_security_policy)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, sending_with(send, self.headers))


def secure_unexpected_errors(app: FastAPI, *, content_security_policy: str) -> None:
    """Give the answer to an unexpected error (a 500) the security headers too.

    Starlette runs the handler for `Exception` in its outermost middleware, outside
    `SecurityHeaders`, so its page would otherwise go out without a Content-Security-Policy.
    """
    handler = app.exception_handlers[Exception]
    headers = security_headers(content_security_policy)

    async def secured(request: Request, exc: Exception) -> Response:
        answer = handler(request, exc)
        response = await answer if inspect.isawaitable(answer) else answer
        assert isinstance(response, Response)
        response.raw_headers.extend(missing(response.raw_headers, headers))
        return response

    app.exception_handlers[Exception] = secured
