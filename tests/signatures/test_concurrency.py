"""Races: simultaneous signs with one e-mail, simultaneous confirmations of one token."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlmodel import Session, select

from app.email.models import OutboxMessage
from app.signatures.models import Signature, SignatureTally
from tests.conftest import LiveServer, Mailbox, confirm_link, token_of
from tests.factories import make_petition, signer


def _all_at_once(count: int, action) -> list[httpx.Response]:
    barrier = threading.Barrier(count)

    def run(i: int) -> httpx.Response:
        with httpx.Client(timeout=30) as http:
            barrier.wait()
            response: httpx.Response = action(http, i)
            return response

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_fifty_simultaneous_signs_with_one_email_leave_one_signature(
    live_server: LiveServer, session: Session
) -> None:
    petition = make_petition(session)
    data = signer(email="same.person@example.org")
    url = f"{live_server.url}/api/v1/petitions/{petition.slug}/signatures"

    responses = _all_at_once(50, lambda http, i: http.post(url, json=data))

    assert {r.status_code for r in responses} == {202}
    assert {r.text for r in responses} == {'{"status":"pending_confirmation"}'}
    assert len(session.exec(select(Signature)).all()) == 1
    # One confirmation e-mail plus a bounded number of re-sends, never 50.
    queued = session.exec(select(OutboxMessage)).all()
    assert 1 <= len(queued) <= live_server.settings.MAX_CONFIRMATION_SENDS


def test_simultaneous_confirmations_of_one_token_count_once(
    live_server: LiveServer, session: Session, smtp: Mailbox, outbox
) -> None:
    petition = make_petition(session)
    url = f"{live_server.url}/api/v1/petitions/{petition.slug}/signatures"
    assert httpx.post(url, json=signer(), timeout=10).status_code == 202
    outbox()
    token = token_of(confirm_link(smtp.wait_for(1)[0]))

    responses = _all_at_once(
        20,
        lambda http, i: http.post(
            f"{live_server.url}/api/v1/signatures/confirm", json={"token": token}
        ),
    )

    statuses = sorted(r.json()["status"] for r in responses)
    assert {r.status_code for r in responses} == {200}
    assert statuses.count("confirmed") == 1
    assert statuses.count("already_confirmed") == 19
    detail = httpx.get(f"{live_server.url}/api/v1/petitions/{petition.slug}", timeout=10).json()
    assert detail["signature_count"] == 1


def test_many_signers_confirming_at_once_are_all_counted(
    live_server: LiveServer, session: Session, smtp: Mailbox, outbox
) -> None:
    petition = make_petition(session)
    url = f"{live_server.url}/api/v1/petitions/{petition.slug}/signatures"
    countries = ["KR", "UA", "DE", "US"]
    signers = [signer(email=f"signer{i}@example.org", country=countries[i % 4]) for i in range(40)]
    responses = _all_at_once(40, lambda http, i: http.post(url, json=signers[i]))
    assert {r.status_code for r in responses} == {202}
    outbox()
    tokens = [token_of(confirm_link(m)) for m in smtp.wait_for(40)]

    confirmations = _all_at_once(
        40,
        lambda http, i: http.post(
            f"{live_server.url}/api/v1/signatures/confirm", json={"token": tokens[i]}
        ),
    )

    assert {r.json()["status"] for r in confirmations} == {"confirmed"}
    detail = httpx.get(f"{live_server.url}/api/v1/petitions/{petition.slug}", timeout=10).json()
    assert detail["signature_count"] == 40
    assert {c["country"]: c["count"] for c in detail["signatures_by_country"]} == {
        "KR": 10,
        "UA": 10,
        "DE": 10,
        "US": 10,
    }
    # The count is spread over several shard rows rather than one hot row.
    assert len(session.exec(select(SignatureTally)).all()) > len(countries)
