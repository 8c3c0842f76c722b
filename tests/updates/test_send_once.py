"""An update is sent once however often the request to send it arrives: the API's
`Idempotency-Key` header, and the console's key per review (a double click on "Send")."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from app.audit.models import AuditEntry
from app.email.models import OutboxMessage
from app.petitions.models import PetitionStatus
from app.updates.models import PetitionUpdate
from tests.factories import make_petition
from tests.updates.test_updates import UPDATE, add_signers, organiser_of


def counts(session: Session) -> tuple[int, int, int]:
    session.expire_all()
    updates = session.exec(select(func.count()).select_from(PetitionUpdate)).one()
    queued = session.exec(
        select(func.count())
        .select_from(OutboxMessage)
        .where(col(OutboxMessage.kind) == "petition_update")
    ).one()
    audited = session.exec(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "update.send")
    ).one()
    return updates, queued, audited


def test_a_repeated_request_with_the_same_key_sends_nothing_more_and_answers_the_same(
    client: TestClient, session: Session, make_account: Any
) -> None:
    petition = make_petition(session, status=PetitionStatus.open)
    add_signers(session, petition, 3)
    account = organiser_of(make_account, session, petition)
    path = f"/api/v1/admin/petitions/{petition.slug}/updates"
    headers = {**account.headers, "Idempotency-Key": "7f9c2b1e-retry"}

    first = client.post(path, json={"translations": UPDATE}, headers=headers)
    again = client.post(path, json={"translations": UPDATE}, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert counts(session) == (1, 3, 1)

    other_texts = {"en": {"subject": "Something else", "body": "Other words"}}
    reused = client.post(path, json={"translations": other_texts}, headers=headers)
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["errors"][0]["field"] == "Idempotency-Key"
    assert counts(session) == (1, 3, 1)

    # Without a key, or with another one, a request is a new update.
    fresh = {**account.headers, "Idempotency-Key": "another"}
    assert client.post(path, json={"translations": UPDATE}, headers=fresh).status_code == 201
    assert (
        client.post(path, json={"translations": UPDATE}, headers=account.headers).status_code == 201
    )
    assert counts(session) == (3, 9, 3)

    too_long = {**account.headers, "Idempotency-Key": "k" * 65}
    refused = client.post(path, json={"translations": UPDATE}, headers=too_long)
    assert refused.status_code == 422
    assert counts(session) == (3, 9, 3)


def test_the_same_key_sent_at_once_from_many_clients_sends_once(
    client: TestClient, session: Session, make_account: Any
) -> None:
    petition = make_petition(session, status=PetitionStatus.open)
    add_signers(session, petition, 5)
    account = organiser_of(make_account, session, petition)
    path = f"/api/v1/admin/petitions/{petition.slug}/updates"
    headers = {**account.headers, "Idempotency-Key": "raced"}
    start = threading.Barrier(6)
    answers: list[Any] = []

    def post() -> None:
        start.wait()
        answers.append(client.post(path, json={"translations": UPDATE}, headers=headers))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert counts(session) == (1, 5, 1)
