"""The tallies rebuilt from the signatures (`tally.recount`, for rows loaded in bulk) are the
tallies that confirming one by one builds: the same counts per shard, country and hour."""

from __future__ import annotations

import os
from datetime import datetime

import pytest
from sqlmodel import Session, select

from app.core.config import Settings
from app.petitions.models import Petition
from app.signatures import bulk, tally
from app.signatures.models import (
    Signature,
    SignatureHourlyTally,
    SignatureStatus,
    SignatureTally,
)
from tests.letters.test_delivery import confirmed_signatures

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgresql"),
    reason="recount runs on PostgreSQL",
)


def tallies(
    session: Session,
) -> tuple[set[tuple[int, str, int, int]], set[tuple[int, datetime, int, int]]]:
    session.expire_all()
    by_country = {
        (t.petition_id, t.country, t.shard, t.count)
        for t in session.exec(select(SignatureTally))
        if t.count
    }
    by_hour = {
        (t.petition_id, t.hour, t.shard, t.count)
        for t in session.exec(select(SignatureHourlyTally))
        if t.count
    }
    return by_country, by_hour


def test_a_recount_gives_the_tallies_confirming_built(
    session: Session, settings: Settings, demo: Petition
) -> None:
    confirmed_signatures(session, settings, demo)
    built = tallies(session)
    assert built[0] and built[1]

    tally.recount(session, settings=settings)
    session.commit()
    assert tallies(session) == built
    assert tally.confirmed_count(session, petition_id=demo.id or 0) == sum(
        count for *_, count in built[0]
    )


def test_a_bulk_load_replaces_the_petitions_signatures_and_counts_them(
    session: Session, settings: Settings, demo: Petition
) -> None:
    confirmed_signatures(session, settings, demo)  # replaced by the load
    assert demo.id is not None
    bulk.load_confirmed(
        session, petition_id=demo.id, count=1_000, settings=settings, countries=("KR", "UA")
    )
    session.commit()
    assert tally.confirmed_count(session, petition_id=demo.id) == 1_000
    by_country = tally.confirmed_by_country(session, petition_id=demo.id)
    assert {(c.country, c.count) for c in by_country} == {("KR", 500), ("UA", 500)}
    rows = session.exec(select(Signature).where(Signature.petition_id == demo.id)).all()
    assert len(rows) == 1_000
    assert all(
        r.status == SignatureStatus.confirmed and r.email.endswith("@example.org") for r in rows
    )
    assert len({r.email_normalised for r in rows}) == 1_000
    hours = {
        r.confirmed_at.replace(minute=0, second=0, microsecond=0) for r in rows if r.confirmed_at
    }
    assert len(hours) > 700  # spread over 30 days, hour by hour
    # The tallies are those that confirming each of them would have built.
    built = tallies(session)
    tally.recount(session, settings=settings)
    assert tallies(session) == built
