"""Retention: a petition's letters and annexes lose their personal data; counts and hashes stay."""

from __future__ import annotations

from sqlalchemy import String, cast, literal, update
from sqlmodel import Session, col

from app.letters.models import Letter, PetitionDelivery


def anonymise_petition(session: Session, *, petition_id: int) -> int:
    """Remove the personal data of a petition's letters (retention: see rights.anonymise_expired)
    and the signers' names in its delivery annexes. The delivery log, counts, hashes and
    manifests stay. Returns how many letters were anonymised."""
    anonymised = (
        session.execute(
            update(Letter)
            .where(col(Letter.petition_id) == petition_id, col(Letter.email) != "")
            .values(
                name="",
                email="",
                email_normalised=literal("anonymised:", String) + cast(col(Letter.id), String),
                city="",
                message="",
                ip_hash=None,
            )
            .returning(col(Letter.id))
            .execution_options(synchronize_session=False)
        )
        .scalars()
        .all()
    )
    session.execute(
        update(PetitionDelivery)
        .where(col(PetitionDelivery.petition_id) == petition_id)
        .values(annex_gzip=b"")
        .execution_options(synchronize_session=False)
    )
    return len(anonymised)
