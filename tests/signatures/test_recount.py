"""The tallies rebuilt from the signatures (`tally.recount`, for rows loaded in bulk) are the
tallies that confirming one by one builds: the same counts per shard, country and hour."""

from __future__ import annotations

import os
from datetime import datetime

import pytest
from sqlmodel import Session, select

from app.core.config import Settings
from app.petitions.models import Petition
from app.signatures import tally
from app.signatures.models import SignatureHourlyTally, SignatureTally
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
