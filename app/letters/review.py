"""What organisers do with one letter: release or discard a held one, mark a printed one posted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth import service as auth_service
from app.auth.models import User
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import ProblemError
from app.letters import delivery_log, scheduling
from app.letters.models import (
    DeliveryLogEntry,
    DeliveryState,
    Letter,
    LetterDelivery,
    PetitionDelivery,
)
from app.petitions.models import Petition
from app.targets.models import DeliveryChannel, Target
from app.webhooks import payloads as webhook_payloads
from app.webhooks import service as webhook_service


def managed_delivery(session: Session, *, user: User, delivery_id: int) -> LetterDelivery:
    """The letter, if this user may manage its petition's campaign; 404 otherwise."""
    delivery = session.get(LetterDelivery, delivery_id)
    petition = session.get(Petition, delivery.petition_id) if delivery else None
    if (
        delivery is None
        or petition is None
        or not auth_service.can_manage(session, user=user, campaign_id=petition.campaign_id)
    ):
        raise ProblemError(404, "letter-not-found", "Letter not found")
    return delivery


def awaiting_review() -> Any:
    """The letters `release` and `discard` take: held for an organiser's review (near-duplicates).
    A letter the daily cap holds for a later day is not among them: it waits in the outbox."""
    return and_(
        col(LetterDelivery.state) == DeliveryState.held, col(LetterDelivery.outbox_id).is_(None)
    )


def _awaits_review(delivery: LetterDelivery) -> bool:
    return delivery.state == DeliveryState.held and delivery.outbox_id is None


def held_for_review(
    session: Session, *, petition_id: int, limit: int = 100
) -> list[tuple[DeliveryLogEntry, Letter | None]]:
    """The petition's letters awaiting review, oldest first, each with the supporter's letter."""
    rows = session.execute(
        delivery_log.log_query()
        .where(col(LetterDelivery.petition_id) == petition_id, awaiting_review())
        .order_by(col(LetterDelivery.id))
        .limit(limit)
    ).all()
    entries = [delivery_log.entry(row) for row in rows]
    ids = {e.letter_id for e in entries if e.letter_id is not None}
    letters = {
        letter.id: letter for letter in session.exec(select(Letter).where(col(Letter.id).in_(ids)))
    }
    return [(e, letters.get(e.letter_id) if e.letter_id else None) for e in entries]


def release(
    session: Session, *, actor: User, delivery: LetterDelivery, settings: Settings
) -> LetterDelivery:
    """Send a held letter after all (an organiser's review of a near-duplicate)."""
    if not _awaits_review(delivery):
        raise ProblemError(409, "letter-not-held", "Only a letter held for review can be released")
    target = session.get(Target, delivery.target_id)
    assert target is not None
    scheduling.schedule(session, delivery=delivery, target=target, settings=settings)
    _audit(session, actor, delivery, "letter.release")
    return delivery


def discard(session: Session, *, actor: User, delivery: LetterDelivery) -> LetterDelivery:
    """Never send a held letter (an organiser's review of a near-duplicate)."""
    if not _awaits_review(delivery):
        raise ProblemError(409, "letter-not-held", "Only a letter held for review can be discarded")
    scheduling.set_state(session, delivery, DeliveryState.cancelled, "discarded by an organiser")
    _audit(session, actor, delivery, "letter.discard")
    return delivery


def mark_posted(session: Session, *, actor: User, delivery: LetterDelivery) -> LetterDelivery:
    """Record that a printed postal letter was posted: it is sent."""
    if delivery.channel != DeliveryChannel.postal or delivery.state != DeliveryState.queued:
        raise ProblemError(
            409, "letter-not-printable", "Only a queued postal letter can be marked as posted"
        )
    delivery.posted_at = utcnow()
    scheduling.set_state(session, delivery, DeliveryState.sent, None)
    _audit(session, actor, delivery, "letter.posted")
    announce_sent(session, delivery=delivery)
    return delivery


def announce_sent(session: Session, *, delivery: LetterDelivery) -> None:
    """`letter.sent` to the campaign's webhooks: the official's mail server accepted the
    letter (called as its e-mail is marked sent), or an organiser marked it posted."""
    petition = session.get(Petition, delivery.petition_id)
    target = session.get(Target, delivery.target_id)
    if petition is None or target is None:
        return
    webhook_service.emit(
        session,
        campaign_id=petition.campaign_id,
        event="letter.sent",
        subject=f"letter:{delivery.id}",
        data=webhook_payloads.letter_sent(
            delivery,
            petition=petition,
            target=target,
            letter=session.get(Letter, delivery.letter_id) if delivery.letter_id else None,
            petition_delivery=(
                session.get(PetitionDelivery, delivery.petition_delivery_id)
                if delivery.petition_delivery_id
                else None
            ),
        ),
    )


def _audit(session: Session, actor: User, delivery: LetterDelivery, action: str) -> None:
    petition = session.get(Petition, delivery.petition_id)
    assert petition is not None
    audit_service.record(
        session,
        actor=actor,
        action=action,
        subject=f"letter_delivery:{delivery.id}",
        campaign_id=petition.campaign_id,
    )
