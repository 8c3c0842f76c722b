"""The signing API's fast path: a valid signature skips the framework.

In a surge, FastAPI's router (which walks every route), its dependency machinery and its
middleware (Starlette's error and body-limit layers, FastAPI's telemetry check, Chorus's admin
lane and security headers) cost more CPU than recording the signature itself (group-committed,
see batch.py). So this ASGI middleware, in front of all of them (an outer middleware, as
app/core/application.py has them: only the request log, the request timer and the cached
reads stand before it), answers `POST /api/v1/petitions/{slug}/signatures` itself when it can,
with the security headers every answer gets (app/core/headers.py), and only parses
differently:

1. the path must match SIGN_PATH and the body be JSON (`Content-Type: application/json`);
2. the body is read up to MAX_BODY_BYTES and validated with the route's model
   (SignatureCreate);
3. CAPTCHA must be off (with it on, each signature waits on a call to the provider, which
   costs far more than the routing this path saves).

Everything after parsing is the route's own code path: SigningBatcher.sign (the petition's
state, the batch's commit), the same 202 body (ACCEPTED), and for a problem the app's own
exception handlers. Anything it does not handle plainly (an invalid or oversized body, another
content type, CAPTCHA on) goes on to the FastAPI route unchanged, with the body replayed, so
that route remains the one definition of errors and of the API's schema; the answers are the
same either way.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.abuse.service import SigningSource
from app.core.headers import missing, sending_with
from app.core.metrics import ROUTE_KEY
from app.signatures.models import SignatureCreate

SIGN_PATH = re.compile(r"/api/v1/petitions/([a-z0-9][a-z0-9-]{0,79})/signatures")
SIGN_ROUTE = "/api/v1/petitions/{slug}/signatures"
ACCEPTED = b'{"status":"pending_confirmation"}'
ACCEPTED_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(ACCEPTED)).encode()),
]


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body over again, then the rest of the stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class FastSigning:
    """`application`: the FastAPI app it stands in front of (its settings, its signing batcher,
    its exception handlers); `security_headers`: what every answer carries (headers.py)."""

    def __init__(
        self, app: ASGIApp, *, application: Any, security_headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.app = app
        self.application = application
        self.security_headers = security_headers
        self.accepted_headers = [
            *ACCEPTED_HEADERS,
            *missing(ACCEPTED_HEADERS, security_headers),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            SIGN_PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        application = self.application
        if match is None or application.state.settings.CAPTCHA_PROVIDER:
            await self.app(scope, receive, send)
            return
        content_type = accept_language = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"accept-language":
                accept_language = value
        if content_type is None or not content_type.startswith(b"application/json"):
            await self.app(scope, receive, send)
            return
        limit = application.state.settings.MAX_BODY_BYTES
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > limit or not message.get("more_body", False):
                break
        try:
            data = None if len(body) > limit else SignatureCreate.model_validate_json(body)
        except ValidationError:
            data = None
        if data is None:  # the route answers with its problem details (or 413)
            await self.app(scope, _replay(body, receive), send)
            return
        scope[ROUTE_KEY] = SIGN_ROUTE  # (the request's metrics: the route's, answered here)
        client = scope.get("client")
        try:
            await application.state.signing.sign(
                slug=match[1],
                data=data,
                accept_language=accept_language.decode("latin-1") if accept_language else None,
                source=SigningSource(ip=client[0] if client else None),
            )
        except Exception as exc:  # the app's own handlers answer, as for the route
            handler = _handler_for(application, exc)
            if handler is None:
                raise
            scope["app"] = application  # (as Starlette sets it: the handlers' request.app)
            response = handler(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
            await response(scope, receive, sending_with(send, self.security_headers))
            return
        await send({"type": "http.response.start", "status": 202, "headers": self.accepted_headers})
        await send({"type": "http.response.body", "body": ACCEPTED})


def _handler_for(application: Any, exc: Exception) -> Any:
    for cls in type(exc).__mro__:
        handler = application.exception_handlers.get(cls)
        if handler is not None:
            return handler
    return None
