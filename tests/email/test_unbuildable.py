"""A message the worker cannot build is that message's failure: never its lane's, never silent."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from app.core.config import Settings
from app.email import mime, outbox
from app.email.models import OutboxMessage, OutboxStatus
from app.email.service import EmailMessage, renderer
from app.email.smtp import mail_config
from app.email.worker import OutboxWorker
from tests.conftest import Account, Mailbox
from tests.worker_thread import worker_running


@renderer("test_addressed")
def _render_addressed(
    session: Session, payload: dict[str, Any], settings: Settings
) -> EmailMessage:
    """A message whose header values come from its payload (as a donor's name comes from a
    donation): `field` names the one to fill with `value`."""
    message = EmailMessage(
        to=payload["to"], subject="Thank you", text="Thank you.", html="<p>Thank you.</p>"
    )
    field, value = payload.get("field"), payload.get("value", "")
    if field == "to_name":
        message.to_name = value
    elif field == "subject":
        message.subject = value
    elif field == "from_name":
        message.from_name = value
    elif field == "reply_to":
        message.reply_to = [(value, "donor@example.org")]
    elif field == "header":
        message.headers = {"Content-Language": value}
    return message


def queue(session: Session, to: str, **payload: Any) -> int:
    new_id = outbox.enqueue(
        session, kind="test_addressed", payload={"to": to, **payload}, recipient=to
    )
    assert new_id is not None
    return new_id


def wait_until_final(session: Session, message_id: int, timeout: float = 10.0) -> OutboxMessage:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = session.exec(select(OutboxMessage).where(OutboxMessage.id == message_id)).one()
        if row.status != OutboxStatus.pending:
            return row
        time.sleep(0.05)
    raise AssertionError(f"outbox message {message_id} still pending after {timeout}s")


def test_a_message_that_cannot_be_built_fails_alone_and_its_lane_goes_on(
    session: Session, settings: Settings, engine: Engine, smtp: Mailbox
) -> None:
    # First in the queue, so first in the worker's only lane: a donor's name with a line break.
    poisoned = queue(
        session, "eve@example.org", field="to_name", value="Eve\r\nBcc: victim@example.org"
    )
    for n in range(10):
        queue(session, f"reader{n}@example.org")
    session.commit()

    with worker_running(settings, engine, WORKER_CONCURRENCY=1, OUTBOX_MAX_ATTEMPTS=3):
        started = time.monotonic()
        delivered = smtp.wait_for(10, timeout=15)
        delay = time.monotonic() - started
        assert delay < 5, f"the other messages waited {delay:.1f}s behind the one that failed"
        assert sorted(str(m["To"]) for m in delivered) == sorted(
            f"reader{n}@example.org" for n in range(10)
        )
        row = wait_until_final(session, poisoned)
    assert row.status == OutboxStatus.failed
    assert row.attempts == 3  # retried with backoff up to its limit, then given up
    assert row.last_error and "To" in row.last_error and "line break" in row.last_error
    assert row.locked_until is None
    time.sleep(0.2)
    assert len(smtp.messages) == 10  # nothing of it went out, to Eve or anyone in a Bcc


@pytest.mark.parametrize(
    ("field", "value", "header"),
    [
        ("to_name", "Eve\r\nBcc: victim@example.org", "To"),
        ("to_name", "Eve\nnot a header at all", "To"),  # would end the header block early
        ("to_name", "Eve\r\n\r\n<p>a body of my own</p>", "To"),
        ("to_name", "Єва\r\nBcc: victim@example.org", "To"),
        ("subject", "Thanks\r\nnot a header", "Subject"),
        ("from_name", "Eve (via Chorus)\nX-Evil: 1", "From"),
        ("reply_to", "Eve\r\nBcc: victim@example.org", "Reply-To"),
        ("header", "en\r\nBcc: victim@example.org", "Content-Language"),
    ],
)
def test_no_header_value_can_break_the_header_block(
    session: Session,
    settings: Settings,
    engine: Engine,
    smtp: Mailbox,
    field: str,
    value: str,
    header: str,
) -> None:
    poisoned = queue(session, "eve@example.org", field=field, value=value)
    queue(session, "reader@example.org")
    session.commit()
    worker = OutboxWorker(
        settings.model_copy(update={"WORKER_CONCURRENCY": 1}),
        engine,
        mail_config(settings, server=settings.MAIL_SERVER or "", port=settings.MAIL_PORT),
    )
    asyncio.run(worker.drain(max_batches=1))

    [delivered] = smtp.wait_for(1)
    assert str(delivered["To"]) == "reader@example.org"
    assert delivered["Message-ID"]
    row = session.exec(select(OutboxMessage).where(OutboxMessage.id == poisoned)).one()
    assert row.status == OutboxStatus.pending  # retried later (its data may be corrected)...
    assert row.attempts == 1 and row.locked_until is None
    assert row.last_error and header in row.last_error and "line break" in row.last_error
    time.sleep(0.2)
    assert len(smtp.messages) == 1  # ...and nothing of it was sent meanwhile


def test_admins_see_failed_messages_with_their_reasons(
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
    smtp: Mailbox,
    admin: Account,
    make_account: Any,
) -> None:
    poisoned = queue(session, "eve@example.org", field="to_name", value="Eve\r\nX: y")
    queue(session, "reader@example.org")
    session.commit()
    worker = OutboxWorker(
        settings.model_copy(update={"OUTBOX_MAX_ATTEMPTS": 1}),
        engine,
        mail_config(settings, server=settings.MAIL_SERVER or "", port=settings.MAIL_PORT),
    )
    asyncio.run(worker.drain())
    smtp.wait_for(1)

    listed = client.get("/api/v1/admin/outbox?status=failed", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    [entry] = listed.json()["data"]
    assert entry["id"] == poisoned
    assert entry["kind"] == "test_addressed"
    assert entry["status"] == "failed"
    assert entry["attempts"] == 1
    assert entry["recipient"] == "eve@example.org"
    assert "line break" in entry["last_error"]
    assert listed.json()["next_after"] is None

    everything = client.get("/api/v1/admin/outbox", headers=admin.headers).json()["data"]
    assert [e["status"] for e in everything] == ["failed", "sent"]
    paged = client.get("/api/v1/admin/outbox?limit=1", headers=admin.headers).json()
    assert [e["id"] for e in paged["data"]] == [poisoned] and paged["next_after"] == poisoned
    # The outbox holds every campaign's mail: admins only.
    organiser = make_account("organiser")
    assert client.get("/api/v1/admin/outbox", headers=organiser.headers).status_code == 403
    assert client.get("/api/v1/admin/outbox").status_code == 401
    bad = client.get("/api/v1/admin/outbox?status=lost", headers=admin.headers)
    assert bad.status_code == 422


def test_an_unexpected_error_writing_one_message_does_not_stop_its_lane(
    session: Session, settings: Settings, engine: Engine, smtp: Mailbox, monkeypatch: Any
) -> None:
    unlucky = queue(session, "unlucky@example.org")
    for n in range(3):
        queue(session, f"reader{n}@example.org")
    session.commit()
    flatten = mime.flatten

    def flaky_flatten(mime: Any) -> bytes:
        if "unlucky@" in str(mime["To"]):
            raise RuntimeError("the writer tripped")
        return flatten(mime)

    monkeypatch.setattr(mime, "flatten", flaky_flatten)
    # Written in the lane, as the MIME message (not by the direct writer, before the lane).
    monkeypatch.setattr(mime, "_direct_shape", lambda message: False)
    worker = OutboxWorker(
        settings.model_copy(update={"WORKER_CONCURRENCY": 1}),
        engine,
        mail_config(settings, server=settings.MAIL_SERVER or "", port=settings.MAIL_PORT),
    )
    asyncio.run(worker.drain(max_batches=1))
    delivered = smtp.wait_for(3)
    assert sorted(str(m["To"]) for m in delivered) == [f"reader{n}@example.org" for n in range(3)]
    row = session.exec(select(OutboxMessage).where(OutboxMessage.id == unlucky)).one()
    assert (row.status, row.attempts) == (OutboxStatus.pending, 1)
    assert row.last_error == "RuntimeError: the writer tripped"
