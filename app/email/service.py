"""The registries of the outbox's message kinds (renderers, prefetchers, what happens once
sent, senders of kinds that are not e-mail), and the suppression list.

Jobs are queued, claimed and recorded by app/email/outbox.py, the only module that writes
`outbox_message`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.core.addresses import normalise_email
from app.core.config import Settings
from app.core.db import dialect_insert, utcnow
from app.email.models import Suppression, SuppressionReason
from app.email.outbox import Claimed


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


# What a message's kind does in the transaction that marks it sent (a letter: announce it to the
# campaign's webhooks), given the payloads of the messages of that kind just marked sent. Its
# failure is logged and undone alone: the "sent" marks stand, so nothing is sent twice.
AfterSent = Callable[[Session, list[dict[str, Any]]], None]
AFTER_SENT: dict[str, AfterSent] = {}


def after_sent(kind: str) -> Callable[[AfterSent], AfterSent]:
    """Register what to do, in the same transaction, when messages of `kind` are marked sent."""

    def register(func: AfterSent) -> AfterSent:
        AFTER_SENT[kind] = func
        return func

    return register


# --- senders: kinds that go out by other means than SMTP ------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a sender did with one claimed message; the worker records it as it records e-mail."""

    claim: Claimed
    sent: bool = False
    # Not sent: why (what admins read); retried with the outbox's backoff, then failed.
    error: str | None = None
    # Not tried (it waits for an earlier message): due again from then, no attempt spent.
    not_before: datetime | None = None
    # None of the above: cancelled (its destination is gone or switched off).


class SendFailed(Exception):
    """A sender's reason for not delivering a message, as admins read it."""


# A sender delivers the claimed messages of its kind (an outgoing webhook: an HTTP POST)
# instead of the renderer and SMTP path, and says what became of each; it opens its own short
# transactions on the engine for what it reads and logs.
Sender = Callable[[list[Claimed], Settings, Engine], Awaitable[list[Outcome]]]
SENDERS: dict[str, Sender] = {}


def sender(kind: str) -> Callable[[Sender], Sender]:
    """Register the function that delivers outbox jobs of `kind` by other means than SMTP."""

    def register(func: Sender) -> Sender:
        SENDERS[kind] = func
        return func

    return register


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


def suppression_reasons(session: Session, *, emails: list[str]) -> dict[str, SuppressionReason]:
    """{address: why it is on the suppression list} for those of `emails` that are on it."""
    wanted = {normalise_email(email): email for email in emails}
    rows = session.exec(
        select(Suppression.email_normalised, Suppression.reason).where(
            col(Suppression.email_normalised).in_(list(wanted))
        )
    )
    return {wanted[email]: SuppressionReason(reason) for email, reason in rows}
