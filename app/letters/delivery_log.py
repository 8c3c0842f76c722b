"""The delivery log: every letter to a petition's officials, with the outbox's word on it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, literal
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from app.email import outbox
from app.email.models import OutboxStatus
from app.letters.models import DeliveryLogEntry, DeliveryState, LetterDelivery, PetitionDelivery
from app.targets.models import DeliveryChannel, Target

# The outbox knows best once it has sent, given up on or cancelled the e-mail.
OUTCOME = outbox.outcomes()
STATE = case(
    (OUTCOME.c.status == OutboxStatus.sent, literal(DeliveryState.sent.value)),
    (OUTCOME.c.status == OutboxStatus.failed, literal(DeliveryState.failed.value)),
    (OUTCOME.c.status == OutboxStatus.cancelled, literal(DeliveryState.cancelled.value)),
    else_=col(LetterDelivery.state),
)


def log_query() -> Any:
    """Letter deliveries with their official's key, state, outbox outcome and delivery number."""
    return (
        sa_select(
            LetterDelivery,
            col(Target.key),
            STATE.label("state"),
            OUTCOME.c.last_error,
            OUTCOME.c.attempts,
            OUTCOME.c.sent_at,
            col(PetitionDelivery.number),
        )
        .join(Target, col(Target.id) == col(LetterDelivery.target_id))
        .outerjoin(OUTCOME, OUTCOME.c.id == col(LetterDelivery.outbox_id))
        .outerjoin(
            PetitionDelivery,
            col(PetitionDelivery.id) == col(LetterDelivery.petition_delivery_id),
        )
    )


def entry(row: Any) -> DeliveryLogEntry:
    """A row of log_query() as the log shows it: the outbox's reason for a failure or retry."""
    delivery, key, state, last_error, attempts, sent_at, number = row
    reason = delivery.reason
    if state in (DeliveryState.failed, DeliveryState.queued) and last_error:
        reason = last_error  # why it failed, or why it is being retried
    elif state == DeliveryState.sent:
        reason = None  # (a daily-cap wait is over once it is sent)
    elif state == DeliveryState.cancelled and reason is None:
        reason = "no longer deliverable: the official was retired or lost their address"
    return DeliveryLogEntry(
        id=delivery.id,
        kind="supporter" if delivery.letter_id else "petition",
        letter_id=delivery.letter_id,
        delivery_number=number,
        target=key,
        channel=delivery.channel,
        state=DeliveryState(state),
        reason=reason,
        attempts=attempts or 0,
        scheduled_on=delivery.scheduled_on,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
        sent_at=sent_at or delivery.posted_at,
    )


def log(
    session: Session,
    *,
    petition_id: int,
    state: DeliveryState | None = None,
    after: int = 0,
    limit: int = 100,
    target_id: int | None = None,
    channel: DeliveryChannel | None = None,
) -> tuple[list[DeliveryLogEntry], int | None]:
    """A page of the petition's log, oldest first, and the id to continue after (or None);
    only the letters in `state`, to one official, or going by one channel when asked."""
    query = log_query().where(
        col(LetterDelivery.petition_id) == petition_id, col(LetterDelivery.id) > after
    )
    if state is not None:
        query = query.where(STATE == state.value)
    if target_id is not None:
        query = query.where(col(LetterDelivery.target_id) == target_id)
    if channel is not None:
        query = query.where(col(LetterDelivery.channel) == channel)
    rows = session.execute(query.order_by(col(LetterDelivery.id)).limit(limit + 1)).all()
    entries = [entry(row) for row in rows[:limit]]
    return entries, (entries[-1].id if len(rows) > limit else None)


def log_entry(session: Session, *, delivery_id: int) -> DeliveryLogEntry:
    """One letter's entry, with any change this transaction made to it."""
    session.flush()
    row = session.execute(log_query().where(col(LetterDelivery.id) == delivery_id)).one()
    return entry(row)
