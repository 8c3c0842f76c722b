"""Queueing e-mail in the outbox, and the registry of renderers that turn jobs into messages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, case, func, literal, literal_column, update
from sqlmodel import Session, col, select

from app.core.config import Settings
from app.core.db import dialect_insert, utcnow
from app.email.models import (
    OutboxEntry,
    OutboxMessage,
    OutboxStatus,
    Suppression,
    SuppressionReason,
)
from app.signatures.validation import normalise_email


@dataclass
class Attachment:
    filename: str
    content: bytes
    media_type: str  # e.g. "text/csv"


@dataclass
class EmailMessage:
    """A rendered e-mail, ready for fastapi-mail."""

    to: str
    subject: str
    text: str
    html: str
    to_name: str | None = None
    reply_to: list[tuple[str, str]] = field(default_factory=list)  # (name, address)
    headers: dict[str, str] = field(default_factory=dict)
    # Shown as "<from_name>" <MAIL_FROM>, e.g. a supporter's name on their letter.
    from_name: str | None = None
    attachments: list[Attachment] = field(default_factory=list)


class Undeliverable(Exception):
    """Raised by a renderer for a message that can never be sent as its subject stands (a
    letter whose template exceeds its budget, say): the worker fails it at once, with this
    text as the reason admins and organisers read, instead of retrying it."""


# A renderer builds the message for a job at send time, from the current state of the database,
# or returns None when the job no longer applies (then the message is cancelled, not sent).
# A renderer's other exceptions are retried with backoff (a bug fixed, a row repaired).
Renderer = Callable[[Session, dict[str, Any], Settings], EmailMessage | None]
RENDERERS: dict[str, Renderer] = {}


# A prefetcher loads what the renderers of a batch of jobs of one kind will read, in a query or
# two, so that rendering N messages is not N round trips. It returns the objects it loaded
# (the caller keeps them alive while the batch renders: the session only holds weak references).
Prefetcher = Callable[[Session, list[dict[str, Any]]], list[Any]]
PREFETCHERS: dict[str, Prefetcher] = {}


def prefetcher(*kinds: str) -> Callable[[Prefetcher], Prefetcher]:
    """Register the function that preloads the data of a batch of outbox jobs of `kinds`."""

    def register(func: Prefetcher) -> Prefetcher:
        for kind in kinds:
            PREFETCHERS[kind] = func
        return func

    return register


def renderer(kind: str) -> Callable[[Renderer], Renderer]:
    """Register the function that renders outbox jobs of `kind`."""

    def register(func: Renderer) -> Renderer:
        RENDERERS[kind] = func
        return func

    return register


def enqueue(
    session: Session,
    *,
    kind: str,
    payload: dict[str, Any],
    dedup_key: str | None = None,
    recipient: str | None = None,
    not_before: datetime | None = None,
) -> int | None:
    """Queue an e-mail job in the caller's transaction; it is sent from `not_before` (now).

    Returns the job's id, or None (and queues nothing) when a job with the same `dedup_key`
    already exists, so retries and concurrent requests cannot queue the same message twice.
    """
    insert = dialect_insert(session)
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    stmt = (
        insert(table)  # Core, not the ORM-enabled insert: this runs for every signature
        .values(
            kind=kind,
            payload=payload,
            dedup_key=dedup_key,
            recipient=recipient,
            next_attempt_at=not_before or utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(table.c.id)
    )
    new_id: int | None = session.execute(stmt).scalar_one_or_none()
    return new_id


def enqueue_many(session: Session, jobs: list[dict[str, Any]]) -> None:
    """Queue several e-mail jobs (each with kind, payload, dedup_key, recipient) in one
    statement; jobs whose dedup_key exists already are skipped."""
    if not jobs:
        return
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    now = utcnow()
    session.execute(
        dialect_insert(session)(table).on_conflict_do_nothing(),
        [{**job, "next_attempt_at": now} for job in jobs],
    )


def forget_recipients(session: Session, *, kind: str, payload_field: str, values: list[str]) -> int:
    """Clear the recipient of the `kind` messages whose payload[`payload_field`] is one of
    `values` (their subject's personal data was removed); those still pending are cancelled.
    Returns how many messages changed."""
    if not values:
        return 0
    result = session.execute(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.kind) == kind,
            OutboxMessage.payload[payload_field].as_string().in_(values),
            col(OutboxMessage.recipient).is_not(None),
        )
        .values(
            recipient=None,
            status=case(
                (
                    col(OutboxMessage.status) == OutboxStatus.pending,
                    literal(OutboxStatus.cancelled.value, String),
                ),
                else_=col(OutboxMessage.status),
            ),
        )
        .returning(col(OutboxMessage.id))
        .execution_options(synchronize_session=False)
    )
    return len(result.scalars().all())


def messages(
    session: Session, *, status: OutboxStatus | None = None, after: int = 0, limit: int = 100
) -> tuple[list[OutboxEntry], int | None]:
    """The outbox's messages in the order they were queued, from after the id `after`, of one
    `status` or all. -> (a page of them, the `after` of the next page or None)"""
    query = select(OutboxMessage).where(col(OutboxMessage.id) > after)
    if status is not None:
        query = query.where(col(OutboxMessage.status) == status)
    rows = session.exec(query.order_by(col(OutboxMessage.id)).limit(limit + 1)).all()
    entries = [OutboxEntry.model_validate(row, from_attributes=True) for row in rows[:limit]]
    return entries, (entries[-1].id if len(rows) > limit else None)


# --- the queue's state, for the people who watch it --------------------------------------------


@dataclass(frozen=True)
class QueueState:
    pending: int  # messages not sent yet (counted up to `cap`)
    failed: int  # messages given up on, kept for inspection (counted up to `cap`)
    cap: int  # a count equal to it means "at least this many"
    waiting_since: datetime | None  # when the longest-waiting due message became due


def queue_state(session: Session, *, now: datetime | None = None, cap: int = 10_000) -> QueueState:
    """How the outbox is doing. Counts stop at `cap` (a surge can queue hundreds of thousands)
    and read only the partial indexes of pending and failed messages, never the whole table."""
    now = now or utcnow()

    def is_(status: OutboxStatus) -> Any:
        # A literal, not a parameter: a prepared statement's generic plan could not know that
        # the partial index applies (see the worker's claim).
        return col(OutboxMessage.status) == literal_column(f"'{status.value}'")

    def count(status: OutboxStatus) -> int:
        some = select(OutboxMessage.id).where(is_(status)).limit(cap).subquery()
        return int(session.execute(select(func.count()).select_from(some)).scalar_one())

    # The claim's own index: its first entry is the message due the longest.
    first_due = session.execute(
        select(func.min(OutboxMessage.next_attempt_at)).where(is_(OutboxStatus.pending))
    ).scalar_one_or_none()
    return QueueState(
        pending=count(OutboxStatus.pending),
        failed=count(OutboxStatus.failed),
        cap=cap,
        waiting_since=first_due if first_due is not None and first_due <= now else None,
    )


# --- suppression: addresses that get no more campaign updates ----------------------------------


def suppress(session: Session, *, email: str, reason: SuppressionReason) -> bool:
    """Put an address on the suppression list, in the caller's transaction.

    The address is normalised as signatures are, so every spelling of one mailbox is covered.
    Returns False when it was already there (its first reason is kept).
    """
    insert = dialect_insert(session)
    stmt = (
        insert(Suppression)
        .values(email_normalised=normalise_email(email), reason=reason, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["email_normalised"])
        .returning(Suppression.email_normalised)
    )
    return session.execute(stmt).scalar_one_or_none() is not None


def is_suppressed(session: Session, *, email: str) -> bool:
    """Whether an address (any spelling of it) is on the suppression list."""
    found = session.exec(
        select(Suppression.email_normalised).where(
            Suppression.email_normalised == normalise_email(email)
        )
    ).first()
    return found is not None
