"""/metrics shows what a surge needs watched; the worker has a health check of its own."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from app.core import cache, metrics
from app.core.config import Settings
from app.core.db import utcnow
from app.email.models import OutboxMessage
from app.main import create_app
from app.signatures import service as signature_service
from app.signatures.models import SignatureCreate
from tests.conftest import Mailbox, confirm_link, token_of
from tests.factories import make_petition, signer
from tests.processes import CHORUS, chorus_env, servers, workers

TOKEN = "metrics-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SIGN_ROUTE = "/api/v1/petitions/{slug}/signatures"


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, labels): value} of a /metrics page."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def watched(settings: Settings, engine: Engine) -> Iterator[Callable[[str], TestClient]]:
    """Clients (from a given address) of an app with a metrics token, which holds an
    address's 3rd signature in a minute."""
    app = create_app(
        settings.model_copy(
            update={"METRICS_TOKEN": SecretStr(TOKEN), "RATE_LIMIT_IP_PER_MINUTE": 2}
        )
    )
    with ExitStack() as stack:
        yield lambda ip: stack.enter_context(TestClient(app, client=(ip, 5000)))


def test_cached_reads_are_counted_and_routes_timed_by_their_whole_template(
    settings: Settings, engine: Engine, demo: Any
) -> None:
    """Reads answered from the cache before routing are counted, not timed by route: the count
    reaches /metrics a second after the first of them at most (metrics.LaterCount)."""
    cache.clear()
    app = create_app(
        settings.model_copy(update={"METRICS_TOKEN": SecretStr(TOKEN), "CACHE_SECONDS": 30})
    )
    path = f"/api/v1/petitions/{demo.slug}"
    with TestClient(app) as http:
        before = scrape(http.get("/metrics", headers=AUTH).text)
        for _ in range(4):  # built once, then three times from the cache
            assert http.get(path).status_code == 200
        counted = 0.0
        deadline = time.monotonic() + 3
        while counted < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
            after = scrape(http.get("/metrics", headers=AUTH).text)
            counted = value(after, "chorus_http_cached_reads_total") - value(
                before, "chorus_http_cached_reads_total"
            )
        page = http.get(f"/petitions/{demo.slug}")  # (built: the page's first read)
        assert page.status_code == 200
        # Under a router whose prefix has a parameter: routed, then refused (no token).
        assert http.get(f"/api/v1/admin/petitions/{demo.slug}/updates").status_code == 401
        after = scrape(http.get("/metrics", headers=AUTH).text)

    def timed(route: str) -> float:
        name = "chorus_http_request_duration_seconds_count"
        return value(after, name, route=route) - value(before, name, route=route)

    cache.clear()
    assert counted == 3
    # The one built, and the page, each timed under its route's whole template (FastAPI's
    # route objects know only their path within their own router: "/petitions/{slug}" both).
    assert timed("/api/v1/petitions/{slug}") == 1
    assert timed("/petitions/{slug}") == 1
    assert timed("/api/v1/admin/petitions/{slug}/updates") == 1
    # Every route label is a template the API documents or a page's: no value in a label.
    labels = {
        dict(key[1])["route"]
        for key in after
        if key[0] == "chorus_http_request_duration_seconds_count"
    }
    assert demo.slug not in "".join(labels)


def test_metrics_count_signatures_batches_latency_and_the_outbox(
    watched: Callable[[str], TestClient],
    session: Session,
    smtp: Mailbox,
    outbox: Callable[..., int],
) -> None:
    petition = make_petition(session)
    url = f"/api/v1/petitions/{petition.slug}/signatures"
    http = watched("203.0.113.5")
    before = scrape(http.get("/metrics", headers=AUTH).text)

    first = signer()
    for data in (first, signer(), signer(), first):  # the 3rd is held, the 4th signed before
        assert http.post(url, json=data).status_code == 202
    after = scrape(http.get("/metrics", headers=AUTH).text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("chorus_signatures_total", outcome="accepted") == 2
    assert delta("chorus_signatures_total", outcome="held") == 1
    assert delta("chorus_signatures_total", outcome="repeated") == 1
    assert delta("chorus_signing_batch_size_count") == 4  # one at a time: four batches
    assert delta("chorus_signing_batch_size_sum") == 4
    assert delta("chorus_http_request_duration_seconds_count", route=SIGN_ROUTE) == 4
    # Two confirmations and one re-sent confirmation wait in the outbox, none overdue yet.
    assert value(after, "chorus_outbox_pending") == 3
    assert value(after, "chorus_outbox_failed") == 0
    assert value(after, "chorus_outbox_oldest_due_seconds") < 30

    assert outbox() == 3
    token = token_of(confirm_link(smtp.wait_for(3)[0]))
    assert http.post("/api/v1/signatures/confirm", json={"token": token}).status_code == 200
    drained = scrape(http.get("/metrics", headers=AUTH).text)
    assert value(drained, "chorus_mails_sent_total") - value(before, "chorus_mails_sent_total") == 3
    assert (
        value(drained, "chorus_signatures_confirmed_total")
        - value(before, "chorus_signatures_confirmed_total")
        == 1
    )
    assert value(drained, "chorus_outbox_pending") == 0
    assert value(drained, "chorus_outbox_oldest_due_seconds") == 0

    # A message refused for good is counted as failed; one due for a minute shows its wait.
    other = watched("198.51.100.23")
    assert other.post(url, json=signer(email="refused@example.org")).status_code == 202
    smtp.refuse_with = "550 5.1.1 no such mailbox"
    outbox()
    assert other.post(url, json=signer()).status_code == 202
    session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.status) == "pending")
        .values(next_attempt_at=utcnow() - timedelta(seconds=90))
    )
    waiting = scrape(http.get("/metrics", headers=AUTH).text)
    assert value(waiting, "chorus_outbox_failed") == 1
    assert value(waiting, "chorus_outbox_pending") == 1
    assert 90 <= value(waiting, "chorus_outbox_oldest_due_seconds") < 120


def test_metrics_need_the_token_and_are_off_without_one(
    watched: Callable[[str], TestClient], client: TestClient, settings: Settings, engine: Engine
) -> None:
    http = watched("203.0.113.5")
    assert http.get("/metrics").status_code == 401
    wrong = http.get("/metrics", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    assert http.get("/metrics", headers=AUTH).status_code == 200
    # No token: absent outside development (held counts would tell bots they are caught).
    assert client.get("/metrics").status_code == 404
    development = create_app(settings.model_copy(update={"ENVIRONMENT": "development"}))
    with TestClient(development) as dev:
        answer = dev.get("/metrics")
    assert answer.status_code == 200 and "chorus_outbox_pending" in answer.text


def test_a_rolled_back_batch_counts_nothing(
    engine: Engine, settings: Settings, session: Session
) -> None:
    petition = make_petition(session)
    accepted = metrics.SIGNATURES_ACCEPTED

    def sign_two() -> Session:
        db = Session(engine)
        requests = [
            signature_service.SignRequest(petition, SignatureCreate(**signer()), "en")
            for _ in range(2)
        ]
        signature_service.sign_many(db, requests, settings=settings)
        return db

    start = accepted._value.get()
    with sign_two() as db:
        db.rollback()
    assert accepted._value.get() == start
    with sign_two() as db:
        db.commit()
    assert accepted._value.get() == start + 2
    assert session.exec(select(OutboxMessage)).all() != []


def test_several_server_processes_report_their_counts_together(
    settings: Settings, engine: Engine, session: Session
) -> None:
    petition = make_petition(session)
    env = chorus_env(settings, METRICS_TOKEN=TOKEN)
    with servers(env, workers=2) as (server,):
        # A new connection each time, so that both processes take some.
        for i in range(12):
            answer = httpx.post(
                f"{server.url}/api/v1/petitions/{petition.slug}/signatures",
                json=signer(),
                headers={"X-Forwarded-For": f"192.0.2.{i + 1}"},
                timeout=30,
            )
            assert answer.status_code == 202
        # Whichever process answers, it reports what all of them counted.
        for _ in range(6):
            samples = scrape(httpx.get(f"{server.url}/metrics", headers=AUTH, timeout=30).text)
            assert value(samples, "chorus_signatures_total", outcome="accepted") == 12
            assert value(samples, "chorus_outbox_pending") == 12


def test_the_worker_health_port_reports_progress_and_its_metrics(
    settings: Settings, engine: Engine, session: Session, smtp: Mailbox, client: TestClient
) -> None:
    petition = make_petition(session)
    assert (
        client.post(f"/api/v1/petitions/{petition.slug}/signatures", json=signer()).status_code
        == 202
    )
    with workers(chorus_env(settings), health_port="free") as (port,):
        smtp.wait_for(1, timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
                if "chorus_mails_sent_total 1.0" in answer.text:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the worker's metrics never showed its e-mail"
            time.sleep(0.1)
        assert "chorus_outbox_pending 0.0" in answer.text
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        checked = subprocess.run(
            [*CHORUS, "worker-health", "--port", str(port)], capture_output=True, timeout=60
        )
        assert checked.returncode == 0, checked.stderr


def test_a_worker_that_cannot_reach_its_database_turns_unhealthy(settings: Settings) -> None:
    env = chorus_env(
        settings,
        DATABASE_URL="postgresql://chorus@127.0.0.1:1/unreachable",
        WORKER_HEALTH_MAX_SECONDS="1",
    )
    with workers(env, health_port="free") as (port,):
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code
            except httpx.HTTPError:
                status = None
            if status == 503:
                break
            time.sleep(0.2)
        assert status == 503
        checked = subprocess.run(
            [*CHORUS, "worker-health", "--port", str(port)], capture_output=True, timeout=60
        )
        assert checked.returncode == 1
    # Nothing listens once the worker is gone: unhealthy too.
    gone = subprocess.run(
        [*CHORUS, "worker-health", "--port", str(port)], capture_output=True, timeout=60
    )
    assert gone.returncode == 1
