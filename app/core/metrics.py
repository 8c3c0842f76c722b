"""Prometheus metrics: what a surge needs watched (README, "Metrics and health").

Counters and histograms are kept by each process. Several server processes on one host (uvicorn
`--workers N`) add theirs up through prometheus-client's multiprocess mode: the environment
variable PROMETHEUS_MULTIPROC_DIR names an empty directory, set before the processes start
(`chorus serve --workers N` makes one when it is unset), and any process answering /metrics
reports the sum. Gauges that describe shared state (the outbox) are read from the database when
scraped, so every process, and every host, reports the same.

Counts that depend on a transaction (signatures recorded, confirmed) are added when the session
commits (`after_commit`), so a rolled-back batch counts nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.config import Settings
from app.core.errors import ProblemError

log = logging.getLogger(__name__)

SIGNATURES = Counter(
    "chorus_signatures",
    "Signatures recorded: accepted (pending confirmation), held (abuse controls), repeated "
    "(signed before: no new signature)",
    ["outcome"],
)
SIGNATURES_ACCEPTED = SIGNATURES.labels(outcome="accepted")
SIGNATURES_HELD = SIGNATURES.labels(outcome="held")
SIGNATURES_REPEATED = SIGNATURES.labels(outcome="repeated")
CONFIRMATIONS = Counter("chorus_signatures_confirmed", "Signatures confirmed (now counted)")
SIGNING_BATCH = Histogram(
    "chorus_signing_batch_size",
    "Signatures recorded per group commit of the signing API",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 200),
)
REQUEST_SECONDS = Histogram(
    "chorus_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MAILS_SENT = Counter("chorus_mails_sent", "E-mails the SMTP server accepted")
CACHED_READS = Counter(
    "chorus_http_cached_reads",
    "Public reads answered from the response cache before routing (counted, not timed)",
)

# A request answered before routing says which route it stands for here (see RequestTimer).
ROUTE_KEY = "chorus.route"


# --- counts that follow a commit -----------------------------------------------------------

_AFTER_COMMIT = "chorus.metrics.after_commit"


def after_commit(session: Session, counter: Any, amount: float = 1) -> None:
    """Add `amount` to `counter` once the session's transaction commits (never on rollback)."""
    if amount:
        session.info.setdefault(_AFTER_COMMIT, []).append((counter, amount))


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for counter, amount in session.info.pop(_AFTER_COMMIT, ()):
        counter.inc(amount)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


# --- request latency -----------------------------------------------------------------------


class RequestTimer:
    """Observes each HTTP request's duration under its route's path template (bounded: one
    series per route); requests answered before routing name their route in ROUTE_KEY."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Each route's series, looked up once (labels() checks and converts on every call).
        self.series: dict[str, Histogram] = {}
        # Each route's whole template (whole_template), by the route object's id (routes live
        # as long as the application; FastAPI's are not hashable).
        self.templates: dict[int, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get(ROUTE_KEY)
            if route is None:
                found = scope.get("route")
                route = self.templates.get(id(found)) if found is not None else "(no route)"
                if route is None:
                    route = self.templates[id(found)] = whole_template(scope, found)
            series = self.series.get(route)
            if series is None:
                series = self.series[route] = REQUEST_SECONDS.labels(route=route)
            series.observe(time.perf_counter() - started)


def whole_template(scope: Scope, route: Any) -> str:
    """The whole path template of the route a request took, from its first request. FastAPI
    includes routers lazily: the route object knows its path within its own router only
    (`/petitions/{slug}` for the API's `/api/v1/petitions/{slug}` and for the page alike), so
    its routers' prefixes are read off the request's path: the segments before the route's
    own. (FastAPI's iter_route_contexts gives them too, but walking the application's routes
    took 0.4 s, a stall of every request in flight.) A route whose prefix would hold one of
    the request's path parameters, or whose own path takes the rest of the path, keeps its
    own path: a label must not carry a value."""
    own = getattr(route, "path", None)
    if not isinstance(own, str) or not own:
        return "(no route)"
    root = scope.get("root_path", "")
    path = scope["path"]
    if root and path.startswith(root):
        path = path[len(root) :]
    parts, own_parts = path.split("/"), own.split("/")
    if ":path}" in own or len(parts) < len(own_parts):
        return own
    prefix = parts[: len(parts) - len(own_parts) + 1]
    values = {str(value) for value in scope.get("path_params", {}).values()}
    if values.intersection(prefix):
        return own
    return "/".join(prefix) + own


class LaterCount:
    """A count kept on an event loop and added to `counter` a second after its first event,
    for events so frequent and cheap that writing each to prometheus-client's multiprocess file
    (a lock, a getpid() and an mmap write, about as much as the rest of a cached read's own
    work) would be a good part of their cost. A scrape sees them at most a second late."""

    def __init__(self, counter: Counter, delay: float = 1.0) -> None:
        self.counter = counter
        self.delay = delay
        self.pending = 0
        self._loop: asyncio.AbstractEventLoop | None = None  # where the next flush is due

    def add(self) -> None:
        """Count one event; on an event loop's thread."""
        self.pending += 1
        if self._loop is None or self._loop.is_closed():  # (a loop gone with its flush due)
            self._loop = asyncio.get_running_loop()
            self._loop.call_later(self.delay, self.flush)

    def flush(self) -> None:
        pending, self.pending, self._loop = self.pending, 0, None
        if pending:
            self.counter.inc(pending)


# --- gauges read when scraped --------------------------------------------------------------


@dataclass(frozen=True)
class Gauge:
    name: str
    help: str
    value: float


class _Gauges(Collector):
    def __init__(self, gauges: Iterable[Gauge]) -> None:
        self.gauges = list(gauges)

    def collect(self) -> Iterator[Metric]:
        for gauge in self.gauges:
            yield GaugeMetricFamily(gauge.name, gauge.help, value=gauge.value)


def exposition(gauges: Iterable[Gauge] = ()) -> bytes:
    """The metrics in Prometheus's text format: this process's (or, in multiprocess mode, all
    processes' together), then `gauges`."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        own = generate_latest(registry)
    else:
        own = generate_latest(REGISTRY)
    scraped = CollectorRegistry()
    scraped.register(_Gauges(gauges))
    return own + generate_latest(scraped)


def check_scraper(request: Request, settings: Settings) -> None:
    """/metrics is for your Prometheus only: with METRICS_TOKEN set it needs that bearer token;
    without one it is open in development and absent otherwise (held counts would tell bots
    what the abuse controls make of them)."""
    token = settings.METRICS_TOKEN.get_secret_value()
    if not token:
        if settings.ENVIRONMENT != "development":
            raise ProblemError(404, "not-found", "Not Found")
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise ProblemError(401, "unauthorized", "A valid METRICS_TOKEN bearer token is needed")


def metrics_response(gauges: Iterable[Gauge]) -> Response:
    return Response(exposition(gauges), media_type=CONTENT_TYPE_LATEST)


# --- a health and metrics port for processes without a web server (the mail worker) --------


@dataclass
class Heartbeat:
    """When a long-running loop last made progress (time.monotonic())."""

    max_age: float
    last: float = 0.0

    def beat(self) -> None:
        self.last = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self.last

    def healthy(self) -> bool:
        return self.age() <= self.max_age


def serve_health(
    host: str, port: int, heartbeat: Heartbeat, gauges: Callable[[], Iterable[Gauge]]
) -> ThreadingHTTPServer:
    """Serve GET /healthz (200 while `heartbeat` is recent, else 503) and GET /metrics (this
    process's metrics and `gauges`) on host:port, from a daemon thread; stop with .shutdown()."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            if self.path == "/healthz":
                ok = heartbeat.healthy()
                body = json.dumps(
                    {"status": "ok" if ok else "stalled", "seconds_since_progress": heartbeat.age()}
                ).encode()
                self._answer(200 if ok else 503, body, "application/json")
            elif self.path == "/metrics":
                try:
                    body = exposition(gauges())
                except Exception:  # the database is away: say so, the heartbeat will too
                    log.exception("reading metrics failed")
                    self._answer(503, b"metrics unavailable\n", "text/plain")
                    return
                self._answer(200, body, CONTENT_TYPE_LATEST)
            else:
                self._answer(404, b"not found\n", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug(format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="chorus-health", daemon=True).start()
    return server
