"""Logging for the server, the worker and the CLI.

Logs keep nothing the database does not: no token of a signed link (a manage or unsubscribe
link in a log is a key to someone's signature for three years), no raw IP address (the database
keeps only keyed hashes) and no e-mail address. Chorus writes its own access log (logger
`chorus.access`, one line per request with a request ID, the path with its token cut out and
the client's IP hash); every line that reaches its handler is redacted once more on the way out,
tracebacks included (an SMTP refusal or a database error may quote an address).

`LOG_FORMAT=json` writes one JSON object per line, for log collectors.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import re
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.clientip import ip_hash
from app.core.config import Settings

# The request a log line was written for ("-" outside requests).
request_id: ContextVar[str] = ContextVar("chorus_request_id", default="-")

# Pages and downloads whose last path segment is a signed link's token.
TOKEN_PATHS = (
    "/signatures/confirm/",
    "/signatures/manage/",
    "/letters/confirm/",
    "/unsubscribe/",
    "/api/v1/annexes/",
)
# make_token's shape (payload.mac, base64url), also misspelt in the standard alphabet or padded.
_TOKEN = re.compile(r"[A-Za-z0-9_+-]{10,}={0,2}\.[A-Za-z0-9_+/-]{20,}={0,2}")
# (The local part's `=`, `&`, `/` and `?` are left out: in a URL they separate parameters.)
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%'*+^_`{|}~-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", re.IGNORECASE
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?(?![\w:])")
# An incoming X-Request-ID is kept when it is plainly an ID: it cannot hold a token (no dot),
# an address (no @) or an IP address (no dot or colon).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def _ip(match: re.Match[str]) -> str:
    text = match.group(0)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text  # a time (12:30:01), a version, …: not an address
    # A bind address or loopback identifies nobody ("listening on 127.0.0.1:8000").
    return text if address.is_loopback or address.is_unspecified else "[ip]"


def redact(text: str) -> str:
    """`text` without tokens, e-mail addresses and IP addresses (except loopback)."""
    text = _TOKEN.sub("[token]", text)
    text = _EMAIL.sub("[email]", text)
    if "." in text:
        text = _IPV4.sub(_ip, text)
    if ":" in text:
        text = _IPV6.sub(_ip, text)
    return text


def redact_path(path: str) -> str:
    """A request path for the log: a tokened page's token replaced by `:token`."""
    for prefix in TOKEN_PATHS:
        if path.startswith(prefix):
            _, slash, rest = path[len(prefix) :].partition("/")
            return f"{prefix}:token{slash}{rest}"
    return redact(path)


class _Context(logging.Filter):
    """Adds the request ID to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class _Redact(_Context):
    """For loggers whose records Chorus's handler does not format (uvicorn's own, when uvicorn
    configures logging itself): the message is redacted where it is logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        super().filter(record)
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# Fields of a record that are not `extra=` data.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "taskName",
    "color_message",  # (uvicorn's message with terminal colours)
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message, `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", request_id.get()),
            "message": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _ChorusHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler configure_logging installs (so that it is installed once)."""


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Log to stderr at `level`, as text or JSON, redacted; safe to call more than once."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    formatter: logging.Formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    ours = [h for h in root.handlers if isinstance(h, _ChorusHandler)]
    if ours:
        for handler in ours:
            handler.setFormatter(formatter)
    elif not root.handlers:
        handler = _ChorusHandler()
        handler.setFormatter(formatter)
        handler.addFilter(_Context())
        root.addHandler(handler)
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Redact) for f in logger.filters):
            logger.addFilter(_Redact())


ACCESS = logging.getLogger("chorus.access")


def _new_request_id() -> str:
    """16 random hex digits: a log's label for a request, not a secret, so from the process's
    own generator (seeded from the OS at start) rather than a system call per request
    (secrets.token_hex was 5% of a server process's time in a surge, py-spy)."""
    return f"{random.getrandbits(64):016x}"


def request_id_for(given: str | None) -> str:
    """A request's ID: its incoming X-Request-ID when that is plainly an ID, else a new one."""
    return given if given and _SANE_REQUEST_ID.fullmatch(given) else _new_request_id()


def log_access(settings: Settings, scope: Scope, status: int, seconds: float, rid: str) -> None:
    """The access log's line for a request: the client's IP hash, the path with any token cut
    out, the status and the time it took."""
    client = scope.get("client")
    source = ip_hash(settings, client[0]) if client else "-"
    path = redact_path(scope.get("root_path", "") + scope["path"])
    query = scope.get("query_string", b"")
    if query:
        path += "?" + redact(query.decode("latin-1"))
    duration = round(seconds * 1000, 1)
    ACCESS.info(
        '%s "%s %s" %s %sms',
        source,
        scope["method"],
        path,
        status,
        duration,
        extra={
            "request_id": rid,
            "client": source,
            "method": scope["method"],
            "path": path,
            "status": status,
            "duration_ms": duration,
        },
    )


class RequestLog:
    """Gives each request an ID (a sane incoming X-Request-ID, else a new one), returns it in
    the X-Request-ID header, and writes the access log line. Plain ASGI: no task per request.
    (Cached public reads are answered outside it, with the same ID and line: core/http.py.)"""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        rid = request_id_for(given)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            status = status or 500
            raise
        finally:
            if ACCESS.isEnabledFor(logging.INFO):
                log_access(self.settings, scope, status, time.perf_counter() - started, rid)
            request_id.reset(token)
