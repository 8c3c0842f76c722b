"""Queueing e-mail in the outbox, and the registry of renderers that turn jobs into messages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal_column
from sqlmodel import Session, col, select

from app.core.config import Settings
from app.core.db import dialect_insert, utcnow
from app.core.metrics import Gauge
from app.email.models import OutboxMessage, OutboxStatus, Suppression, SuppressionReason
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


# A renderer builds the message for a job at send time, from the current state of the database,
# or returns None when the job no longer applies (then the message is cancelled, not sent).
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


def outbox_gauges(session: Session) -> list[Gauge]:
    """The outbox as /metrics shows it, in one statement that reads only the two partial
    indexes (pending, failed), never the history of sent messages."""

    def where(status: OutboxStatus) -> Any:
        # A literal, so that a prepared statement's generic plan still sees the index predicate.
        return col(OutboxMessage.status) == literal_column(f"'{status.value}'")

    pending = select(func.count()).select_from(OutboxMessage).where(where(OutboxStatus.pending))
    first_due = select(func.min(OutboxMessage.next_attempt_at)).where(where(OutboxStatus.pending))
    failed = select(func.count()).select_from(OutboxMessage).where(where(OutboxStatus.failed))
    row = session.execute(
        select(pending.scalar_subquery(), first_due.scalar_subquery(), failed.scalar_subquery())
    ).one()
    oldest = 0.0 if row[1] is None else max(0.0, (utcnow() - row[1]).total_seconds())
    return [
        Gauge("chorus_outbox_pending", "E-mails waiting to be sent (due or retrying)", row[0]),
        Gauge("chorus_outbox_failed", "E-mails that failed for good (kept for inspection)", row[2]),
        Gauge(
            "chorus_outbox_oldest_due_seconds",
            "How long the pending e-mail due the longest has been due (0: none due)",
            oldest,
        ),
    ]


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
