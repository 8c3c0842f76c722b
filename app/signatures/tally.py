"""The confirmed counts: the sharded tallies, the only place they are written and summed.

A signature counts once confirmed and stops counting when withdrawn or invalidated; whoever
changes its status (app/signatures/lifecycle.py) counts it in or out here, in the same
transaction and under a guard on the status it expects, so that each is counted once.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, text
from sqlmodel import Session, col, select

from app.core.config import Settings
from app.core.db import insert_for
from app.petitions.models import CountryCount
from app.signatures.models import Signature, SignatureHourlyTally, SignatureTally

_TALLY = SignatureTally.__table__  # type: ignore[attr-defined]
_HOURLY = SignatureHourlyTally.__table__  # type: ignore[attr-defined]


@functools.cache
def _upserts(dialect: str) -> tuple[Any, Any]:
    """The two upserts add_to_tallies runs, built once per dialect with bound parameters: on
    the tables (Core), not the ORM-enabled statements built per call, which were most of a
    confirmation's CPU (each built its insert, its ON CONFLICT clause and the proxies of its
    `excluded` columns anew, then went through the ORM's bulk-insert path)."""
    insert = insert_for(dialect)
    return _upsert(insert, _TALLY, "country"), _upsert(insert, _HOURLY, "hour")


def _upsert(insert: Any, table: Any, key: str) -> Any:
    """Add :delta to the (petition, `key`, shard) row of `table`, made if missing."""
    statement = insert(table).values(
        petition_id=bindparam("petition_id"),
        shard=bindparam("shard"),
        count=bindparam("delta"),
        **{key: bindparam(key)},
    )
    return statement.on_conflict_do_update(
        index_elements=["petition_id", key, "shard"],
        set_={"count": table.c.count + statement.excluded.count},
    )


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
    connection = session.connection()
    by_country, by_hour = _upserts(connection.dialect.name)
    shard = signature.id % settings.TALLY_SHARDS
    common = {"petition_id": signature.petition_id, "shard": shard, "delta": delta}
    connection.execute(by_country, {**common, "country": signature.country})
    hour = confirmed_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    connection.execute(by_hour, {**common, "hour": hour})


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


# (Built once, run on the connection: the ORM's statement per call was a tenth of a
# confirmation's CPU.)
_CONFIRMED_COUNT = select(func.coalesce(func.sum(_TALLY.c.count), 0)).where(
    _TALLY.c.petition_id == bindparam("petition_id")
)


def confirmed_count(session: Session, *, petition_id: int) -> int:
    """Confirmed signatures of a petition, from the tallies (a few rows, never a scan)."""
    total = session.connection().execute(_CONFIRMED_COUNT, {"petition_id": petition_id})
    return int(total.scalar_one())


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
