"""Signatures as other systems read them, page by page: a petition's confirmed signatures, and
the people behind them (the OSDI API, app/osdi/, reads them here). Read-only.

Chorus keeps no table of people: a person is an e-mail address (normalised as signing does)
with at least one confirmed signature whose personal data is still held. Callers pass the
campaigns the reader may see (`campaign_ids`, None for all of them), and every answer comes
from those campaigns' signatures alone, so nobody learns what a person did elsewhere.

Listing people groups the readable signatures by address: each page reads them all (an index
scan per petition on PostgreSQL), which is fine for syncing tools, not for a public page.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.petitions.models import Petition
from app.signatures.models import Signature, SignatureStatus

CONFIRMED = col(Signature.status) == SignatureStatus.confirmed


def _in_campaigns(query: Any, campaign_ids: list[int] | None) -> Any:
    if campaign_ids is None:
        return query
    petitions = select(Petition.id).where(col(Petition.campaign_id).in_(campaign_ids))
    return query.where(col(Signature.petition_id).in_(petitions))


def _of_people(query: Any, campaign_ids: list[int] | None) -> Any:
    """Confirmed signatures that still hold personal data, in the campaigns given."""
    return _in_campaigns(
        query.where(CONFIRMED, col(Signature.anonymised_at).is_(None)), campaign_ids
    )


def confirmed_page(
    session: Session, *, petition_id: int, offset: int, limit: int
) -> list[Signature]:
    """A petition's confirmed signatures (anonymised ones included), oldest first."""
    return list(
        session.exec(
            select(Signature)
            .where(Signature.petition_id == petition_id, CONFIRMED)
            .order_by(col(Signature.id))
            .offset(offset)
            .limit(limit)
        )
    )


def count_confirmed(session: Session, *, petition_id: int) -> int:
    """How many confirmed signature rows a petition has (what confirmed_page pages through)."""
    query = select(func.count()).select_from(Signature)
    return session.exec(query.where(Signature.petition_id == petition_id, CONFIRMED)).one()


def confirmed_one(session: Session, *, petition_id: int, signature_id: int) -> Signature | None:
    """One confirmed signature of a petition, or None."""
    signature = session.get(Signature, signature_id)
    if signature is None or signature.petition_id != petition_id:
        return None
    return signature if signature.status == SignatureStatus.confirmed else None


def people(
    session: Session, *, campaign_ids: list[int] | None, offset: int, limit: int
) -> list[str]:
    """The people (normalised addresses) of these campaigns, in the order of their first
    signature there."""
    first = func.min(Signature.id)
    query = _of_people(select(Signature.email_normalised), campaign_ids)
    rows = session.exec(
        query.group_by(col(Signature.email_normalised)).order_by(first).offset(offset).limit(limit)
    )
    return list(rows)


def count_people(session: Session, *, campaign_ids: list[int] | None) -> int:
    """How many people `people` pages through."""
    query = select(func.count(func.distinct(Signature.email_normalised))).select_from(Signature)
    total: int = session.exec(_of_people(query, campaign_ids)).one()
    return total


def signatures_of(
    session: Session, *, emails: list[str], campaign_ids: list[int] | None
) -> list[Signature]:
    """These people's confirmed signatures that hold personal data, in these campaigns, oldest
    first: all that may be said about them there."""
    if not emails:
        return []
    query = select(Signature).where(col(Signature.email_normalised).in_(emails))
    return list(session.exec(_of_people(query, campaign_ids).order_by(col(Signature.id))))


def in_campaigns(
    session: Session, *, signature_id: int, campaign_ids: list[int] | None
) -> Signature | None:
    """A signature (any status) on a petition of these campaigns, or None."""
    query = select(Signature).where(col(Signature.id) == signature_id)
    found: Signature | None = session.exec(_in_campaigns(query, campaign_ids)).first()
    return found
