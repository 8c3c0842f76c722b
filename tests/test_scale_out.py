"""Scaling out (README, "Scaling out"): separately started servers and workers against one
database lose nothing and count nothing twice; pool size, PgBouncer and read-replica settings."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, func, text
from sqlmodel import Session, select

from app.core import migrations
from app.core.config import Settings
from app.core.db import make_engine, normalise_url
from app.email.models import OutboxMessage
from app.main import create_app
from app.signatures.models import Signature, SignatureStatus, SignatureTally
from tests.conftest import ROOT, Mailbox, _postgres_admin_url, confirm_link, token_of
from tests.factories import make_petition, signer
from tests.processes import chorus_env, servers, workers

ON_SQLITE = not os.environ.get("DATABASE_URL", "").startswith("postgres")
scaled_out = pytest.mark.skipif(
    ON_SQLITE,
    reason="scaling out means several hosts against one PostgreSQL (SQLite is one file on one "
    "host, one writer at a time); set DATABASE_URL to a PostgreSQL server to run this",
)
postgres_only = pytest.mark.skipif(
    ON_SQLITE,
    reason="a PostgreSQL connection setting (SQLite has no pool size or prepared statements "
    "to configure); set DATABASE_URL to a PostgreSQL server to run this",
)


def recipient(message: Any) -> str:
    return str(message["To"].addresses[0].addr_spec)


@scaled_out
def test_two_servers_and_two_workers_lose_nothing_and_count_once(
    settings: Settings, engine: Engine, session: Session, smtp: Mailbox
) -> None:
    petition = make_petition(session)
    env = chorus_env(settings, CACHE_SECONDS="0")  # abuse controls at their default limits
    people = [signer(email=f"crowd{i}@example.org") for i in range(120)]
    # 20 of them sign at both servers at the same moment, from two addresses.
    requests = [(i, person, i % 2) for i, person in enumerate(people)]
    requests += [(1000 + i, people[i], 1 - i % 2) for i in range(20)]

    with servers(env, 2) as web, workers(env, 2):
        path = f"/api/v1/petitions/{petition.slug}/signatures"

        def sign(request: tuple[int, dict[str, Any], int]) -> int:
            n, person, server = request
            address = f"198.51.{n // 250}.{n % 250 + 1}"
            answer = httpx.post(
                web[server].url + path,
                json=person,
                headers={"X-Forwarded-For": address},
                timeout=60,
            )
            return answer.status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(sign, requests))
        assert Counter(answers) == {202: len(requests)}

        # Every confirmation e-mail queued reaches the SMTP server, once.
        queued = session.exec(select(func.count()).select_from(OutboxMessage)).one()
        smtp.wait_for(queued, timeout=60)
        deadline = time.monotonic() + 30  # (marked sent just after the SMTP server took it)
        while {m.status for m in session.exec(select(OutboxMessage))} != {"sent"}:
            assert time.monotonic() < deadline, "messages left unsent"
            time.sleep(0.1)
        outbox = session.exec(select(OutboxMessage)).all()
        message_ids = Counter(str(m["Message-ID"]) for m in smtp.messages)
        assert message_ids == {f"<outbox-{m.id}@example.org>": 1 for m in outbox}

        signatures = session.exec(select(Signature)).all()
        assert len(signatures) == len(people)  # one per person, whichever server they used
        assert {s.status for s in signatures} == {SignatureStatus.pending}
        assert len({s.ip_hash for s in signatures}) == len(people)  # their own addresses seen
        sends = {s.email: s.confirmation_sends for s in signatures}
        received = Counter(recipient(m) for m in smtp.messages)
        assert received == sends  # a second confirmation only for those who signed twice
        assert sum(sends.values()) == len(people) + 20

        # Half of them confirm, each link pressed at both servers at the same moment.
        first_link: dict[str, str] = {}
        for message in smtp.messages:
            first_link.setdefault(recipient(message), token_of(confirm_link(message)))
        tokens = [first_link[person["email"]] for person in people[:60]]

        def confirm(job: tuple[str, int]) -> str:
            token, server = job
            answer = httpx.post(
                f"{web[server].url}/api/v1/signatures/confirm", json={"token": token}, timeout=60
            )
            assert answer.status_code == 200, answer.text
            return str(answer.json()["status"])

        jobs = [(token, server) for token in tokens for server in (0, 1)]  # pairs go together
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = Counter(pool.map(confirm, jobs))
        assert results == {"confirmed": 60, "already_confirmed": 60}

        confirmed = session.exec(
            select(func.count()).where(Signature.status == SignatureStatus.confirmed)
        ).one()
        tallied = session.exec(select(func.sum(SignatureTally.count))).one()
        assert confirmed == tallied == 60
        for server in web:
            shown = httpx.get(f"{server.url}/api/v1/petitions/{petition.slug}", timeout=30)
            assert shown.json()["signature_count"] == 60


@postgres_only
def test_the_pool_size_setting_sizes_each_server_process_pool(
    settings: Settings, engine: Engine
) -> None:
    app = create_app(settings.model_copy(update={"DATABASE_POOL_SIZE": 3}))
    assert app.state.engine.pool.size() == 3


@postgres_only
def test_prepared_statements_can_be_turned_off_for_pgbouncer(migrated_url: str) -> None:
    def prepared_after_repeats(url: str) -> int:
        engine = make_engine(url, pool_size=1)
        try:
            with engine.connect() as conn:
                for n in range(10):
                    conn.execute(text("SELECT :n + 1"), {"n": n})
                prepared = conn.execute(text("SELECT count(*) FROM pg_prepared_statements"))
                return int(prepared.one()[0])
        finally:
            engine.dispose()

    assert prepared_after_repeats(migrated_url) > 0  # psycopg prepares what repeats
    assert prepared_after_repeats(f"{migrated_url}?prepare_threshold=none") == 0


@pytest.fixture
def replica_url(database_url: str, tmp_path: Any) -> Iterator[str]:
    """Another database with Chorus's schema, standing in for a read replica."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'replica.db'}"
        migrations.upgrade(url)
        yield url
        return
    name = f"chorus_replica_{uuid.uuid4().hex[:10]}"
    admin = create_engine(_postgres_admin_url(database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{normalise_url(database_url).rpartition('/')[0]}/{name}"
    try:
        migrations.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_public_reads_come_from_the_read_replica_and_signing_from_the_primary(
    settings: Settings, engine: Engine, session: Session, replica_url: str
) -> None:
    replica = make_engine(replica_url, pool_size=1)
    try:
        with Session(replica) as on_replica:
            only_there = make_petition(on_replica)
            on_replica.commit()
            slug = only_there.slug
        app = create_app(settings.model_copy(update={"DATABASE_READ_URL": replica_url}))
        with TestClient(app) as client:
            assert client.get(f"/api/v1/petitions/{slug}").status_code == 200
            assert client.get(f"/petitions/{slug}").status_code == 200
            listed = client.get("/api/v1/petitions").json()
            assert [p["slug"] for p in listed["data"]] == [slug]
            # Signing writes to the primary, which has no such petition.
            signing = client.post(f"/api/v1/petitions/{slug}/signatures", json=signer())
            assert signing.status_code == 404
    finally:
        replica.dispose()


# --- compose.yaml ---------------------------------------------------------------------------


def test_compose_runs_two_servers_two_workers_postgres_and_a_mail_catcher() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    commands = {name: " ".join(service.get("command") or []) for name, service in services.items()}
    web = [name for name, command in commands.items() if "chorus serve" in command]
    mail_workers = [name for name, command in commands.items() if "chorus worker " in command]
    assert len(web) == 2 and len(mail_workers) == 2
    assert any("postgres" in service.get("image", "") for service in services.values())
    assert any("mailpit" in service.get("image", "") for service in services.values())
    # Every Chorus setting it gives is one Chorus has, and each worker is health-checked
    # through its own port.
    for name in web + mail_workers:
        for variable in services[name]["environment"]:
            known = variable in Settings.model_fields
            assert known or variable in {"PROMETHEUS_MULTIPROC_DIR", "FORWARDED_ALLOW_IPS"}
    for name in mail_workers:
        port = re.search(r"--health-port (\d+)", commands[name])
        assert port is not None
        check = " ".join(services[name]["healthcheck"]["test"])
        assert f"chorus worker-health --port {port.group(1)}" in check
    # The workers below the servers on shared cores: in a container (a scheduling group of its
    # own) the worker's nice orders only its own processes, so the weight says it.
    servers_weight = min(services[name].get("cpu_shares", 1024) for name in web)
    for name in mail_workers:
        assert services[name].get("cpu_shares", 1024) < servers_weight
