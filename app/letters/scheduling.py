"""When a letter goes: the outbox for e-mail under each official's daily cap, print for post."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.core.config import Settings
from app.core.db import utcnow
from app.email import outbox
from app.letters.models import DeliveryState, LetterDelivery
from app.targets.models import DeliveryChannel, Target


def set_state(
    session: Session, delivery: LetterDelivery, state: DeliveryState, reason: str | None
) -> None:
    """Move a letter to `state`, with the reason the log shows."""
    delivery.state, delivery.reason, delivery.updated_at = state, reason, utcnow()
    session.add(delivery)


def schedule(
    session: Session,
    *,
    delivery: LetterDelivery,
    target: Target,
    settings: Settings,
    capped: bool = True,
) -> None:
    """Queue a delivery: e-mail through the outbox, on the first day with room under the
    target's daily cap (a later day holds it until then); postal waits to be printed."""
    session.flush()
    assert delivery.id is not None
    today = utcnow().date()
    day = today
    if capped and delivery.channel == DeliveryChannel.email:
        # One confirmation at a time per target, so two cannot both take the last place.
        session.exec(select(Target.id).where(Target.id == target.id).with_for_update()).first()
        counts: dict[date, int] = dict(
            session.execute(
                select(col(LetterDelivery.scheduled_on), func.count())
                .where(
                    LetterDelivery.target_id == target.id,
                    col(LetterDelivery.scheduled_on) >= today,
                    LetterDelivery.state != DeliveryState.cancelled,
                    col(LetterDelivery.outbox_id).is_not(None),
                )
                .group_by(col(LetterDelivery.scheduled_on))
            ).all()
        )
        while counts.get(day, 0) >= settings.LETTER_DAILY_CAP_PER_TARGET:
            day += timedelta(days=1)
    delivery.scheduled_on = day
    if delivery.channel == DeliveryChannel.postal:
        set_state(session, delivery, DeliveryState.queued, "to print and post")
        return
    not_before = None
    if day > today:
        not_before = datetime.combine(day, time(), tzinfo=UTC)
        set_state(
            session,
            delivery,
            DeliveryState.held,
            f"daily-cap: {settings.LETTER_DAILY_CAP_PER_TARGET} letters a day to this "
            f"official; sent on {day.isoformat()}",
        )
    else:
        set_state(session, delivery, DeliveryState.queued, None)
    delivery.outbox_id = outbox.enqueue(
        session,
        kind="letter",
        payload={"delivery_id": delivery.id},
        dedup_key=f"letter-delivery:{delivery.id}",
        recipient=target.email,
        not_before=not_before,
    )
    session.add(delivery)
