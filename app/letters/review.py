"""What organisers do with one letter: release or discard a held one, mark a printed one posted."""

from __future__ import annotations

from sqlmodel import Session

from app.audit import service as audit_service
from app.auth import service as auth_service
from app.auth.models import User
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import ProblemError
from app.letters import scheduling
from app.letters.models import DeliveryState, LetterDelivery
from app.petitions.models import Petition
from app.targets.models import DeliveryChannel, Target


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


def release(
    session: Session, *, actor: User, delivery: LetterDelivery, settings: Settings
) -> LetterDelivery:
    """Send a held letter after all (an organiser's review of a near-duplicate)."""
    if delivery.state != DeliveryState.held or delivery.outbox_id is not None:
        raise ProblemError(409, "letter-not-held", "Only a letter held for review can be released")
    target = session.get(Target, delivery.target_id)
    assert target is not None
    scheduling.schedule(session, delivery=delivery, target=target, settings=settings)
    _audit(session, actor, delivery, "letter.release")
    return delivery


def discard(session: Session, *, actor: User, delivery: LetterDelivery) -> LetterDelivery:
    """Never send a held letter (an organiser's review of a near-duplicate)."""
    if delivery.state != DeliveryState.held or delivery.outbox_id is not None:
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
    return delivery


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
