"""The durable e-mail outbox.

A row is written in the same transaction as the change that causes the e-mail, so a message
exists exactly when its cause was committed. `chorus worker` renders and sends it afterwards.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String, Text, text
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow


class OutboxStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"  # gave up after OUTBOX_MAX_ATTEMPTS; kept for inspection and requeue
    cancelled = "cancelled"  # its subject disappeared before sending (e.g. signature removed)


class SuppressionReason(StrEnum):
    unsubscribed = "unsubscribed"
    bounced = "bounced"  # a permanent SMTP refusal


class Suppression(SQLModel, table=True):
    """Addresses that must not get campaign updates again (every bulk send checks this)."""

    email_normalised: str = Field(sa_type=String(320), primary_key=True)
    reason: SuppressionReason = Field(sa_type=String(16))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


OUTBOX_FILLFACTOR = 40  # percent of each of outbox_message's pages filled by inserts


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_message"
    __table_args__ = (
        # What the workers claim: due messages in (next_attempt_at, id) order. Partial, so it
        # holds only the pending messages (a sent one leaves it, and the index does not grow
        # with the history), and its order is the claim's order: a claim reads its batch off
        # the front of the index instead of sorting every pending row.
        Index(
            "ix_outbox_pending",
            "next_attempt_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # A signer's data download lists the messages sent to them.
        Index("ix_outbox_recipient", "recipient"),
        # Admins list the messages that failed (GET /admin/outbox?status=failed), the console
        # and /metrics count them: partial, so it costs the sending nothing and reads none of
        # the mail sent.
        Index(
            "ix_outbox_failed",
            "id",
            postgresql_where=text("status = 'failed'"),
            sqlite_where=text("status = 'failed'"),
        ),
        # Most of each page left free on PostgreSQL: a claim writes each message once more (its
        # lease, its worker's name, its attempt) and changes no indexed column, so with room on
        # its page the new, longer version is a heap-only update, which writes none of the
        # four indexes; on full pages every claimed row was written into each index again (a
        # claim's statement, 200 messages in a surge: 5.8 ms -> 2.3 ms). Half a page left
        # free was not enough for a version grown by the worker's name (one in eight moved).
        # The "sent" mark changes status, which the partial indexes' conditions read, so it
        # cannot be one. The price: the table takes up to 2.5 times the space (README).
        {"postgresql_with": {"fillfactor": OUTBOX_FILLFACTOR}},
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    # Which renderer builds the message, e.g. "signature_confirmation".
    kind: str = Field(sa_type=String(60))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # At most one message per key: retries, races and redeliveries cannot send twice.
    dedup_key: str | None = Field(default=None, sa_type=String(200), unique=True)
    status: OutboxStatus = Field(default=OutboxStatus.pending, sa_type=String(16), nullable=False)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    # A worker holds a claimed message until this time; after it (a crashed worker), another
    # worker may take it.
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    locked_by: str | None = Field(default=None, sa_type=String(100))
    last_error: str | None = Field(default=None, sa_type=Text)
    recipient: str | None = Field(default=None, sa_type=String(320))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OutboxEntry(BaseModel):
    """A message in the outbox as admins see it (without its payload)."""

    id: int
    kind: str
    status: OutboxStatus
    recipient: str | None
    attempts: int
    last_error: str | None = PydanticField(
        description="Why the last attempt did not send it (the SMTP server's answer, a header "
        "that would break the message, a letter template over its budget); null once sent."
    )
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None


class OutboxPage(BaseModel):
    data: list[OutboxEntry]
    next_after: int | None = PydanticField(
        description="Pass as `after` for the next page; null on the last page."
    )
