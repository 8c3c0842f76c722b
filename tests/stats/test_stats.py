"""Open data: confirmed signatures by country and by hour, from the tallies only."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlmodel import Session, select

from app.core.addresses import normalise_email
from app.core.config import Settings
from app.petitions.models import Petition, PetitionStatus
from app.signatures import tally
from app.signatures.models import Signature, SignatureStatus
from tests.conftest import Mailbox, body_text
from tests.factories import make_petition, signer

Outbox = Callable[..., int]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def stats(client: TestClient, slug: str, **params: str) -> Any:
    return client.get(f"/api/v1/petitions/{slug}/stats", params=params)


def hours(response: Any) -> list[tuple[datetime, int]]:
    return [(datetime.fromisoformat(h["hour"]), h["count"]) for h in response.json()["by_hour"]]


def confirmed_at(
    session: Session, settings: Settings, petition: Petition, when: datetime, country: str = "UA"
) -> Signature:
    """A signature confirmed at `when`, counted as confirming does (rows and tallies)."""
    email = f"s{when.timestamp():.0f}-{country}-{id(when)}@example.org"
    signature = Signature(
        petition_id=petition.id or 0,
        name="Signer",
        email=email,
        email_normalised=normalise_email(email),
        country=country,
        locale="en",
        status=SignatureStatus.confirmed,
        confirmed_at=when,
    )
    session.add(signature)
    session.flush()
    tally.add_to_tallies(
        session, signature=signature, confirmed_at=when, settings=settings, delta=1
    )
    session.commit()
    return signature


@pytest.fixture
def statements(app: FastAPI) -> Iterator[list[str]]:
    """The SQL the application runs during the test."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(app.state.engine, "before_cursor_execute", record)
    yield seen
    event.remove(app.state.engine, "before_cursor_execute", record)


def test_counts_by_country_and_hour_match_confirmations(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Outbox, statements: list[str]
) -> None:
    petition = make_petition(session, goal=250)
    people = [
        signer(email="a@example.org", country="UA"),
        signer(email="b@example.org", country="UA"),
        signer(email="c@example.org", country="KR"),
        signer(email="pending@example.org", country="DE"),  # never confirmed: not counted
    ]
    for person in people:
        client.post(f"/api/v1/petitions/{petition.slug}/signatures", json=person)
    outbox()
    smtp.wait_for(4)
    for address in ("a@example.org", "b@example.org", "c@example.org"):
        [message] = smtp.to(address)
        confirm = next(w for w in body_text(message).split() if "/signatures/confirm/" in w)
        assert client.post(confirm).status_code == 200

    statements.clear()
    response = stats(client, petition.slug)
    assert response.status_code == 200
    body = response.json()
    assert body["petition"] == petition.slug
    assert body["signature_count"] == 3
    assert body["goal"] == 250
    assert body["by_country"] == [{"country": "UA", "count": 2}, {"country": "KR", "count": 1}]

    confirmed = session.exec(
        select(Signature.confirmed_at).where(Signature.status == SignatureStatus.confirmed)
    ).all()
    expected = Counter(
        when.replace(minute=0, second=0, microsecond=0) for when in confirmed if when
    )
    assert hours(response) == sorted(expected.items())
    assert all(h["hour"].endswith("Z") for h in body["by_hour"])
    # The same numbers as the petition itself shows.
    detail = client.get(f"/api/v1/petitions/{petition.slug}").json()
    assert detail["signature_count"] == body["signature_count"]
    assert detail["signatures_by_country"] == body["by_country"]
    # Computed from the tallies: the signature table is never read.
    assert statements
    assert not [s for s in statements if re.search(r"\bsignature\b", s)]
    assert response.headers["access-control-allow-origin"] == "*"


def test_by_hour_can_be_limited_to_a_period(
    client: TestClient, session: Session, settings: Settings
) -> None:
    petition = make_petition(session)
    for minutes in (15, 45, 125, 330):  # 00:15, 00:45, 02:05, 05:30
        confirmed_at(session, settings, petition, T0 + timedelta(minutes=minutes))
    h = [T0 + timedelta(hours=n) for n in range(6)]

    assert hours(stats(client, petition.slug)) == [(h[0], 2), (h[2], 1), (h[5], 1)]
    # `since` counts from the start of its hour; `until` is exclusive.
    assert hours(stats(client, petition.slug, since="2026-03-01T00:30:00Z")) == [
        (h[0], 2),
        (h[2], 1),
        (h[5], 1),
    ]
    assert hours(stats(client, petition.slug, since="2026-03-01T01:00:00Z")) == [
        (h[2], 1),
        (h[5], 1),
    ]
    assert hours(stats(client, petition.slug, until="2026-03-01T02:00:00Z")) == [(h[0], 2)]
    assert hours(
        stats(client, petition.slug, since="2026-03-01T00:00:00", until="2026-03-01T05:00:00")
    ) == [(h[0], 2), (h[2], 1)]
    # Another offset is converted: 11:00 in Seoul is 02:00 UTC.
    assert hours(stats(client, petition.slug, since="2026-03-01T11:00:00+09:00")) == [
        (h[2], 1),
        (h[5], 1),
    ]
    # The period limits only by_hour; the totals stay whole.
    limited = stats(client, petition.slug, since="2026-03-01T05:00:00Z").json()
    assert limited["signature_count"] == 4
    assert limited["by_country"] == [{"country": "UA", "count": 4}]

    backwards = stats(client, petition.slug, since="2026-03-02T00:00:00Z", until="2026-03-01")
    assert backwards.status_code == 422
    assert backwards.headers["content-type"].startswith("application/problem+json")
    assert stats(client, petition.slug, since="yesterday").status_code == 422


def test_stats_stay_right_after_a_withdrawal(
    client: TestClient, session: Session, settings: Settings
) -> None:
    petition = make_petition(session)
    confirmed_at(session, settings, petition, T0 + timedelta(minutes=10), country="UA")
    gone = confirmed_at(session, settings, petition, T0 + timedelta(hours=3), country="KR")
    confirmed_at(session, settings, petition, T0 + timedelta(minutes=20), country="UA")
    assert stats(client, petition.slug).json()["signature_count"] == 3

    # A withdrawal counts the signature out of the tallies it was counted into.
    assert gone.confirmed_at is not None
    gone.status = SignatureStatus.withdrawn
    session.add(gone)
    tally.add_to_tallies(
        session, signature=gone, confirmed_at=gone.confirmed_at, settings=settings, delta=-1
    )
    session.commit()

    body = stats(client, petition.slug).json()
    assert body["signature_count"] == 2
    assert body["by_country"] == [{"country": "UA", "count": 2}]
    assert hours(stats(client, petition.slug)) == [(T0, 2)]


@pytest.mark.parametrize("status", [PetitionStatus.draft, PetitionStatus.archived])
def test_unpublished_petitions_have_no_stats(
    client: TestClient, session: Session, settings: Settings, status: PetitionStatus
) -> None:
    petition = make_petition(session, status=status)
    confirmed_at(session, settings, petition, T0)
    response = stats(client, petition.slug)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert stats(client, "no-such-petition").status_code == 404
    assert stats(client, "Not A Slug!").status_code == 404


def test_a_closed_petition_keeps_its_stats_and_an_empty_one_has_zeroes(
    client: TestClient, session: Session, settings: Settings
) -> None:
    closed = make_petition(session, status=PetitionStatus.closed)
    confirmed_at(session, settings, closed, T0)
    assert stats(client, closed.slug).json()["signature_count"] == 1

    empty = make_petition(session, goal=10)
    assert stats(client, empty.slug).json() == {
        "petition": empty.slug,
        "signature_count": 0,
        "goal": 10,
        "by_country": [],
        "by_hour": [],
    }
