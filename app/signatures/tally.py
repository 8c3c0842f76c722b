"""The confirmed counts: the sharded tallies, the only place they are written and summed.

A signature counts once confirmed and stops counting when withdrawn or invalidated; whoever
changes its status (app/signatures/lifecycle.py) counts it in or out here, in the same
transaction and under a guard on the status it expects, so that each is counted once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from app.core.config import Settings
from app.core.db import dialect_insert
from app.petitions.models import CountryCount
from app.signatures.models import Signature, SignatureHourlyTally, SignatureTally


def add_to_tallies(
    session: Session,
    *,
    signature: Signature,
    confirmed_at: datetime,
    settings: Settings,
    delta: int,
) -> None:
    """Count a confirmed signature in (delta=1) or out of (delta=-1) the country and hourly
    tallies, on the shard its id picks. Callers change the signature's status in the same
    transaction, guarded so that each signature is counted in or out once."""
    assert signature.id is not None
    shard = signature.id % settings.TALLY_SHARDS
    insert = dialect_insert(session)
    by_country = insert(SignatureTally).values(
        petition_id=signature.petition_id, country=signature.country, shard=shard, count=delta
    )
    session.execute(
        by_country.on_conflict_do_update(
            index_elements=["petition_id", "country", "shard"],
            set_={"count": SignatureTally.count + by_country.excluded.count},
        )
    )
    hour = confirmed_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    by_hour = insert(SignatureHourlyTally).values(
        petition_id=signature.petition_id, hour=hour, shard=shard, count=delta
    )
    session.execute(
        by_hour.on_conflict_do_update(
            index_elements=["petition_id", "hour", "shard"],
            set_={"count": SignatureHourlyTally.count + by_hour.excluded.count},
        )
    )


# What add_to_tallies adds for each confirmation (the shard its id picks, the hour of its
# confirmation in UTC), for every confirmed signature at once.
_RECOUNT = (
    "DELETE FROM signature_tally",
    "DELETE FROM signature_hourly_tally",
    "INSERT INTO signature_tally (petition_id, country, shard, count)"
    " SELECT petition_id, country, id % :shards, count(*) FROM signature"
    " WHERE status = 'confirmed' GROUP BY 1, 2, 3",
    "INSERT INTO signature_hourly_tally (petition_id, hour, shard, count)"
    " SELECT petition_id, date_trunc('hour', confirmed_at, 'UTC'), id % :shards, count(*)"
    " FROM signature WHERE status = 'confirmed' GROUP BY 1, 2, 3",
)


def recount(session: Session, *, settings: Settings) -> None:
    """Rebuild every tally from the signatures themselves (PostgreSQL), for rows loaded in bulk
    past `add_to_tallies` (the benchmark's million signatures). Not for a live database: a
    confirmation committed meanwhile could be counted twice or not at all."""
    assert session.get_bind().dialect.name == "postgresql", "recount runs on PostgreSQL"
    for statement in _RECOUNT:
        session.execute(text(statement), {"shards": settings.TALLY_SHARDS})


def confirmed_count(session: Session, *, petition_id: int) -> int:
    """Confirmed signatures of a petition, from the tallies (a few rows, never a scan)."""
    total = session.execute(
        select(func.coalesce(func.sum(SignatureTally.count), 0)).where(
            SignatureTally.petition_id == petition_id
        )
    ).scalar_one()
    return int(total)


def confirmed_counts(session: Session, *, petition_ids: list[int]) -> dict[int, int]:
    """Confirmed signatures of several petitions at once."""
    if not petition_ids:
        return {}
    rows = session.execute(
        select(col(SignatureTally.petition_id), func.sum(SignatureTally.count))
        .where(col(SignatureTally.petition_id).in_(petition_ids))
        .group_by(col(SignatureTally.petition_id))
    )
    return {petition_id: int(total) for petition_id, total in rows}


def confirmed_by_country(session: Session, *, petition_id: int) -> list[CountryCount]:
    """Confirmed signatures per country, largest first."""
    total = func.sum(SignatureTally.count)
    rows = session.execute(
        select(SignatureTally.country, total)
        .where(SignatureTally.petition_id == petition_id)
        .group_by(SignatureTally.country)
        .having(total > 0)
        .order_by(total.desc(), SignatureTally.country)
    )
    return [CountryCount(country=country, count=int(count)) for country, count in rows]
