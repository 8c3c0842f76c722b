"""Test fixtures: the real migrations on the real database, a real SMTP server, a live server.

The database is PostgreSQL when DATABASE_URL points to one (CI), SQLite otherwise. Each test
session gets a fresh database built by the Alembic migrations. Tests are isolated by emptying
every table after each test, not by a rolled-back transaction: several tests need what the
application really does (commits seen by other connections, concurrent requests, a worker).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import ORMExecuteState
from sqlmodel import Session

from app.core import migrations
from app.core.config import Settings
from app.core.db import make_engine, normalise_url
from app.email.devmailbox import free_port
from app.email.smtp import mail_config
from app.email.worker import OutboxWorker
from app.main import create_app
from app.models import metadata
from tests.fake_stripe import FakeStripe

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


# --- database --------------------------------------------------------------------------------


def _postgres_admin_url(url: str) -> str:
    base, _, _ = normalise_url(url).rpartition("/")
    return f"{base}/postgres"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL", "")
    if not configured.startswith(("postgresql", "postgres:")):
        path = tmp_path_factory.mktemp("db") / "chorus-test.db"
        yield f"sqlite:///{path}"
        return
    name = f"chorus_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(_postgres_admin_url(configured), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = normalise_url(configured).rpartition("/")[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def migrated_url(database_url: str) -> str:
    migrations.upgrade(database_url)
    return database_url


@pytest.fixture(scope="session")
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url, pool_size=20)
    yield engine
    engine.dispose()


def _empty_all_tables(engine: Engine) -> None:
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 (our own table names)


@pytest.fixture(autouse=True)
def _isolated(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "engine" in request.fixturenames:
        _empty_all_tables(request.getfixturevalue("engine"))


@pytest.fixture(scope="session")
def _autocommit_engine(migrated_url: str) -> Iterator[Engine]:
    kwargs: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}
    if migrated_url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(normalise_url(migrated_url), **kwargs)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine, _autocommit_engine: Engine) -> Iterator[Session]:
    """A session for arranging data and checking results.

    Every statement commits at once, so the test never holds a lock or an old snapshot while
    the application (in this thread or another) works on the same database.
    """
    with Session(_autocommit_engine, expire_on_commit=False) as session:

        @event.listens_for(session, "do_orm_execute")
        def _always_fresh(state: ORMExecuteState) -> None:
            # Reads reflect what the application committed, not this session's cached objects.
            if state.is_select:
                state.update_execution_options(populate_existing=True)

        yield session


# --- SMTP ------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """What a real SMTP server (aiosmtpd) received."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Set to an SMTP reply like "451 try later" to make the server refuse messages.
    refuse_with: str | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse_with:
            return self.refuse_with
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.envelopes.append(envelope)
            self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if address in str(m["To"])]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} e-mails, got {len(self.messages)}")

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.envelopes.clear()
        self.refuse_with = None


@pytest.fixture(scope="session")
def _smtp_server() -> Iterator[Mailbox]:
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
    mailbox = Mailbox(host="127.0.0.1", port=free_port())
    controller = Controller(mailbox, hostname=mailbox.host, port=mailbox.port)
    controller.start()
    yield mailbox
    controller.stop()


@pytest.fixture
def smtp(_smtp_server: Mailbox) -> Iterator[Mailbox]:
    _smtp_server.clear()
    yield _smtp_server
    _smtp_server.clear()


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def confirm_link(message: EmailMessage) -> str:
    for line in body_text(message).splitlines():
        if "/signatures/confirm/" in line:
            return line.strip()
    raise AssertionError("no confirmation link in the e-mail")


def token_of(link: str) -> str:
    return link.split("/signatures/confirm/", 1)[1].split("?", 1)[0]


# --- Stripe ----------------------------------------------------------------------------------

STRIPE_WEBHOOK_SECRET = "whsec_test_chorus"


@pytest.fixture(scope="session")
def _fake_stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_stripe(_fake_stripe: FakeStripe) -> Iterator[FakeStripe]:
    _fake_stripe.reset()
    yield _fake_stripe
    _fake_stripe.reset()


# --- settings, app, worker -------------------------------------------------------------------


@pytest.fixture(scope="session")
def settings(
    migrated_url: str,
    _smtp_server: Mailbox,
    _fake_stripe: FakeStripe,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    return Settings(
        _env_file=None,
        ENVIRONMENT="test",
        DATABASE_URL=migrated_url,
        PUBLIC_BASE_URL="http://testserver",
        SECRET_KEY=TEST_SECRET,
        MAIL_SERVER=_smtp_server.host,
        MAIL_PORT=_smtp_server.port,
        MAIL_FROM="campaign@example.org",
        DEV_MAILBOX_DIR=tmp_path_factory.mktemp("mailbox"),
        OUTBOX_RETRY_BASE_SECONDS=0.05,
        MAIL_TIMEOUT=5,
        CACHE_SECONDS=0,  # tests read what they just wrote; the cache has its own test
        # Every test request comes from 127.0.0.1: rate limits are tested with their own app.
        RATE_LIMIT_IP_PER_MINUTE=1_000_000,
        RATE_LIMIT_IP_PER_HOUR=1_000_000,
        RATE_LIMIT_DOMAIN_PER_MINUTE=1_000_000,
        RATE_LIMIT_DOMAIN_PER_HOUR=1_000_000,
        STRIPE_SECRET_KEY=_fake_stripe.api_key,
        STRIPE_WEBHOOK_SECRET=STRIPE_WEBHOOK_SECRET,
        STRIPE_API_BASE=_fake_stripe.url,
    )


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI, engine: Engine) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def outbox(settings: Settings, engine: Engine) -> Callable[..., int]:
    """Run the real outbox worker once over what is due; returns how many it handled."""

    def drain(**overrides: Any) -> int:
        worker_settings = settings.model_copy(update=overrides) if overrides else settings
        worker = OutboxWorker(
            worker_settings,
            engine,
            mail_config(
                worker_settings,
                server=worker_settings.MAIL_SERVER or "",
                port=worker_settings.MAIL_PORT,
            ),
        )
        return asyncio.run(worker.drain())

    return drain


# --- a live server (for concurrency and the browser) -----------------------------------------


@dataclass
class LiveServer:
    url: str
    settings: Settings


@pytest.fixture(scope="session")
def live_server(settings: Settings, engine: Engine) -> Iterator[LiveServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    live_settings = settings.model_copy(update={"PUBLIC_BASE_URL": url})
    config = uvicorn.Config(
        create_app(live_settings), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:
        raise RuntimeError("live server did not start")
    yield LiveServer(url=url, settings=live_settings)
    server.should_exit = True
    thread.join(timeout=10)


# --- data ------------------------------------------------------------------------------------


@pytest.fixture
def demo(session: Session) -> Any:
    """The demo campaign, as `chorus load-demo` creates it."""
    from app.demo.loader import load_demo
    from app.petitions.models import Petition

    load_demo(session)
    session.commit()
    from sqlmodel import select

    return session.exec(select(Petition)).one()


ROOT = Path(__file__).resolve().parents[1]


# --- accounts --------------------------------------------------------------------------------


@dataclass
class Account:
    email: str
    password: str
    headers: dict[str, str]  # Authorization: Bearer ... (a long-lived API token)


@pytest.fixture
def make_account(session: Session) -> Any:
    """make_account(role="organiser", campaigns=[slugs]) -> Account with a bearer token."""
    from app.auth import service as auth_service
    from app.auth.models import Role, TokenKind

    counter = iter(range(1, 10_000))

    def make(role: str = "organiser", campaigns: list[str] | None = None) -> Account:
        n = next(counter)
        email, password = f"{role}{n}@example.org", f"correct horse battery {n}"
        user = auth_service.create_user(
            session, email=email, password=password, role=Role(role), campaign_slugs=campaigns or []
        )
        token, _ = auth_service.issue_token(session, user=user, kind=TokenKind.api, name="tests")
        session.commit()
        return Account(email=email, password=password, headers={"Authorization": f"Bearer {token}"})

    return make


@pytest.fixture
def admin(make_account: Any) -> Account:
    account: Account = make_account("admin")
    return account
