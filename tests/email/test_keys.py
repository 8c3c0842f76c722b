"""De-duplication keys: one spelling per kind, whoever queues the message, in Python or in SQL.

A key that two writers spell differently lets the same e-mail be queued twice; a spelling that
changes between releases does the same to the messages queued before it. On PostgreSQL the
first confirmation is queued by the signing batch's one statement (SQL), every later one in
Python: both must write the key `outbox.confirmation_key` spells.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import literal, update
from sqlmodel import Session, col, select

from app.abuse import service as abuse_service
from app.core.config import Settings
from app.core.db import utcnow
from app.email import outbox
from app.email.models import OutboxMessage
from app.signatures import service as signature_service
from app.signatures.models import Signature, SignatureCreate, SignatureStatus
from tests.factories import make_petition, signer


@pytest.mark.parametrize(
    "parts",
    [("update", 12, "ID"), ("signature-confirmation", "ID", 1), ("ID",), ("ID", "ID", "x")],
)
def test_the_sql_spelling_of_a_key_is_the_python_one(session: Session, parts: Any) -> None:
    in_sql = [literal(345) if part == "ID" else part for part in parts]
    in_python = [345 if part == "ID" else part for part in parts]
    spelt = session.execute(select(outbox.dedup_key_sql(*in_sql))).scalar_one()
    assert spelt == outbox.dedup_key(*in_python)


def test_each_confirmation_is_queued_under_its_one_key_whoever_queues_it(
    session: Session, settings: Settings
) -> None:
    petition = make_petition(session)
    request = signature_service.SignRequest(
        petition, SignatureCreate(**signer(email="ada@example.org")), "en"
    )

    def keys() -> list[str | None]:
        messages = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        return [message.dedup_key for message in messages]

    def set_status(status: SignatureStatus) -> None:
        session.execute(update(Signature).values(status=status))

    # The first: on PostgreSQL in the statement that stores the signature.
    signature_service.sign_many(session, [request], settings=settings)
    signature = session.exec(select(Signature)).one()
    assert signature.id is not None
    first = f"signature-confirmation:{signature.id}:1"
    assert keys() == [first] == [outbox.confirmation_key(signature.id, 1)]

    # Signing again while pending: the second confirmation.
    signature_service.sign_many(session, [request], settings=settings)
    second = f"signature-confirmation:{signature.id}:2"
    assert keys() == [first, second]
    assert second == outbox.confirmation_key(signature.id, 2)

    # Signing again once confirmed: "already signed", once a day.
    set_status(SignatureStatus.confirmed)
    signature_service.sign_many(session, [request], settings=settings)
    signature_service.sign_many(session, [request], settings=settings)
    day = utcnow().strftime("%Y-%m-%d")
    already = f"signature-already-signed:{signature.id}:{day}"
    assert keys() == [first, second, already]
    assert already == outbox.already_signed_key(signature.id, day)

    # Held, then released by an organiser: its own confirmation, once.
    set_status(SignatureStatus.suspect)
    assert abuse_service.release(session, petition=petition) == 1
    released = f"signature-confirmation:{signature.id}:released"
    assert keys() == [first, second, already, released]
    assert released == outbox.confirmation_key(signature.id, "released")
