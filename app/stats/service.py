"""Open data about a petition's signatures, read from the tallies only.

Counts come from `signature_tally` (per country) and `signature_hourly_tally` (per hour), each
the sum of a few shard rows: never a scan of the signatures, so the numbers are cheap to serve
during a surge and carry no personal data.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import Session, col, select

from app.core.errors import field_problem
from app.petitions.models import CountryCount, Petition
from app.signatures import service as signature_service
from app.signatures.models import SignatureHourlyTally


class HourCount(BaseModel):
    hour: datetime  # the start of the hour, UTC
    count: int


class PetitionStats(BaseModel):
    petition: str
    signature_count: int
    goal: int
    by_country: list[CountryCount]
    by_hour: list[HourCount]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def confirmed_by_hour(
    session: Session,
    *,
    petition_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[HourCount]:
    """Confirmed signatures per hour (UTC), oldest first; hours with none are left out.

    An hour is included when it overlaps [since, until): `since` counts from the start of its
    hour, `until` is exclusive.
    """
    total = func.sum(SignatureHourlyTally.count)
    query = select(col(SignatureHourlyTally.hour), total).where(
        SignatureHourlyTally.petition_id == petition_id
    )
    since, until = _utc(since), _utc(until)
    if since is not None:
        start = since.replace(minute=0, second=0, microsecond=0)
        query = query.where(col(SignatureHourlyTally.hour) >= start)
    if until is not None:
        query = query.where(col(SignatureHourlyTally.hour) < until)
    rows = session.execute(
        query.group_by(col(SignatureHourlyTally.hour))
        .having(total > 0)
        .order_by(col(SignatureHourlyTally.hour))
    )
    return [HourCount(hour=_utc(hour) or hour, count=int(count)) for hour, count in rows]


def confirmed_since(
    session: Session, *, petition_ids: list[int], since: datetime
) -> dict[int, int]:
    """Confirmed signatures of several petitions from the hour `since` falls in onwards (the
    hourly tallies' resolution), by petition; petitions with none are left out."""
    if not petition_ids:
        return {}
    start = (_utc(since) or since).replace(minute=0, second=0, microsecond=0)
    rows = session.execute(
        select(col(SignatureHourlyTally.petition_id), func.sum(SignatureHourlyTally.count))
        .where(
            col(SignatureHourlyTally.petition_id).in_(petition_ids),
            col(SignatureHourlyTally.hour) >= start,
        )
        .group_by(col(SignatureHourlyTally.petition_id))
    )
    return {petition_id: int(total) for petition_id, total in rows if total}


def stats(
    session: Session,
    *,
    petition: Petition,
    since: datetime | None = None,
    until: datetime | None = None,
) -> PetitionStats:
    assert petition.id is not None
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since > until:
        message = "`since` must not be after `until`"
        raise field_problem("since", "range_invalid", message)
    return PetitionStats(
        petition=petition.slug,
        signature_count=signature_service.confirmed_count(session, petition_id=petition.id),
        goal=petition.goal,
        by_country=signature_service.confirmed_by_country(session, petition_id=petition.id),
        by_hour=confirmed_by_hour(session, petition_id=petition.id, since=since, until=until),
    )
