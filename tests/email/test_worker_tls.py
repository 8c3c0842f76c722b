"""`chorus worker` (on uvloop where installed: app/core/process.run_event_loop) reaches a mail
relay over STARTTLS and over implicit TLS, checking the relay's certificate, as production
relays (port 587 or 465) ask."""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session

from app.core.config import Settings
from app.core.db import utcnow
from app.email.devmailbox import free_port
from app.email.models import OutboxMessage
from tests.factories import signer
from tests.processes import CHORUS, chorus_env


class Relay:
    """What the relay received: each message's bytes."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.received.append(envelope.content)
        return "250 OK"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files)."""
    folder = tmp_path_factory.mktemp("relay-tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "relay.pem", folder / "relay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(params=["starttls", "implicit"])
def relay(
    request: pytest.FixtureRequest, certificate: tuple[Path, Path]
) -> Iterator[tuple[str, int, Relay]]:
    """A relay that speaks only TLS: STARTTLS required before MAIL, or TLS from the start."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    handler, port = Relay(), free_port()
    if request.param == "starttls":
        controller = Controller(
            handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
        )
    else:
        controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    yield request.param, port, handler
    controller.stop()


def test_the_worker_sends_over_tls_and_checks_the_relays_certificate(
    client: TestClient,
    session: Session,
    demo: Any,
    settings: Settings,
    relay: tuple[str, int, Relay],
    certificate: tuple[Path, Path],
) -> None:
    mode, port, handler = relay
    data = signer()
    url = f"/api/v1/petitions/{demo.slug}/signatures"
    assert client.post(url, json=data).status_code == 202
    env = chorus_env(
        settings,
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(port),
        MAIL_STARTTLS="true" if mode == "starttls" else "false",
        MAIL_SSL_TLS="true" if mode == "implicit" else "false",
    )

    def worker_once(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CHORUS, "worker", "--once"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    # A certificate nobody vouches for: nothing is sent (the message waits for a retry).
    untrusted = worker_once(SSL_CERT_FILE=str(certificate[0].with_name("none.pem")))
    assert untrusted.returncode == 0, untrusted.stderr
    assert handler.received == []
    # The relay's certificate trusted: the confirmation goes out, over TLS only.
    session.execute(
        update(OutboxMessage).values(
            next_attempt_at=utcnow() - timedelta(seconds=1), locked_until=None
        )
    )
    session.commit()
    sent = worker_once(SSL_CERT_FILE=str(certificate[0]))
    assert sent.returncode == 0, sent.stderr
    [content] = handler.received
    assert data["email"].encode() in content
