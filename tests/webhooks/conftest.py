"""A real HTTP endpoint for webhooks to reach, an app that may reach it, and helpers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from app.core.config import Settings
from app.email.devmailbox import free_port
from app.main import create_app
from app.signatures import service as signature_service
from app.signatures.models import SignatureCreate
from tests.conftest import Account


@dataclass
class Received:
    """One request the endpoint got, and what it answered."""

    body: bytes
    headers: dict[str, str]
    answered: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: answers `status` (200), or is not there at all
    (`stop()`: connections are refused) until `start()` again, on the same port."""

    port: int = field(default_factory=free_port)
    status: int = 200
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/chorus?key=abc"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.status
                with receiver.lock:
                    receiver.requests.append(
                        Received(body, {k.lower(): v for k, v in self.headers.items()}, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if 200 <= r.answered < 300]

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """The first `count` accepted requests, waiting for them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            accepted = self.accepted()
            if len(accepted) >= count:
                return accepted
            time.sleep(0.02)
        raise AssertionError(f"expected {count} deliveries, got {len(self.accepted())}")


@pytest.fixture
def receivers() -> Iterator[Callable[[], Receiver]]:
    """receivers() -> a started Receiver; all are stopped after the test."""
    started: list[Receiver] = []

    def make() -> Receiver:
        receiver = Receiver().start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


@pytest.fixture
def receiver(receivers: Callable[[], Receiver]) -> Receiver:
    return receivers()


@pytest.fixture(scope="session")
def hook_settings(settings: Settings) -> Settings:
    """The test settings, with webhooks allowed to reach this machine (127.0.0.1)."""
    return settings.model_copy(update={"WEBHOOK_ALLOW_LOOPBACK": True})


@pytest.fixture(scope="session")
def _hook_app(hook_settings: Settings) -> Any:
    return create_app(hook_settings)


@pytest.fixture
def hook_client(_hook_app: Any, engine: Engine) -> Iterator[TestClient]:
    with TestClient(_hook_app) as client:
        yield client


def register(
    client: TestClient,
    account: Account,
    campaign: str,
    url: str,
    *,
    events: list[str] | None = None,
    scope: str = "names",
) -> tuple[int, str]:
    """Register an endpoint through the admin API. -> (its id, its secret)"""
    response = client.post(
        f"/api/v1/admin/campaigns/{campaign}/webhooks",
        json={"url": url, "events": events or ["signature.confirmed"], "scope": scope},
        headers=account.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["secret"]


def sign(session: Session, settings: Settings, petition: Any, email: str, **fields: Any) -> int:
    """A pending signature (as the signing API stores one). -> its id"""
    data = SignatureCreate.model_construct(
        name=fields.pop("name", "Olena Kovalenko"),
        email=email,
        country=fields.pop("country", "UA"),
        postcode=fields.pop("postcode", None),
        consent_updates=fields.pop("consent_updates", False),
    )
    signature_service.sign(session, petition=petition, data=data, locale="en", settings=settings)
    session.commit()
    found = signature_service.find_in_campaign(
        session, campaign_id=petition.campaign_id, email=email
    )
    assert found is not None
    return found


def confirm(client: TestClient, settings: Settings, signature_id: int) -> None:
    """Confirm through the API, as the e-mail's link does."""
    token = signature_service.confirmation_token(settings, signature_id=signature_id)
    response = client.post("/api/v1/signatures/confirm", json={"token": token})
    assert response.status_code == 200, response.text
