"""Outgoing webhooks: the endpoints organisers register, the events on their way, the attempts.

An endpoint belongs to a campaign and hears the events it chose, with as much personal data as
its scope allows. Each event for an endpoint is an outbox message (kind "webhook", the durable
queue) with a `webhook_delivery` row holding what to send while it is on its way; every HTTP
attempt leaves a `webhook_attempt` row, the log organisers read.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow

# Every event Chorus announces, in the order README lists them.
EVENTS = (
    "signature.confirmed",
    "signature.withdrawn",
    "letter.sent",
    "donation.paid",
    "donation.refunded",
    "petition.delivered",
)
Event = Literal[
    "signature.confirmed",
    "signature.withdrawn",
    "letter.sent",
    "donation.paid",
    "donation.refunded",
    "petition.delivered",
]


class Scope(StrEnum):
    """How much personal data an endpoint receives; each scope includes the ones above it."""

    counts = "counts"  # no personal data: what happened, to which petition, the counts
    names = "names"  # + who: a signer's or donor's name and country, ids
    full = "full"  # + how to reach them: e-mail address, postcode, consent


class DisabledReason(StrEnum):
    organiser = "organiser"  # switched off through the API
    failing = "failing"  # switched off by Chorus after WEBHOOK_DISABLE_AFTER_HOURS of failures


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoint"

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    url: str = Field(sa_type=String(2000))
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    scope: Scope = Field(sa_type=String(8))
    # The whsec_ signing secret, sealed with a key derived from SECRET_KEY (app/core/sealing.py):
    # it must be read again to sign each delivery, so it cannot be a hash.
    secret_sealed: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    # When the failures without a success in between began (None: the last attempt succeeded).
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_reason: DisabledReason | None = Field(default=None, sa_type=String(16))


class WebhookDelivery(SQLModel, table=True):
    """An event on its way to one endpoint: what to send, while its outbox message is pending.

    The row goes once the event is delivered (the attempt log keeps the record), so the bodies
    of delivered events, which may hold names and addresses, are not kept.
    """

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        # Events about one subject go out in order: the ordering check looks for an earlier
        # event of the same endpoint and subject still on its way.
        Index("ix_webhook_delivery_order", "endpoint_id", "subject", "outbox_id"),
    )

    # The outbox message that carries it (its id orders the events of a subject).
    outbox_id: int = Field(
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"),
            ForeignKey("outbox_message.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        )
    )
    endpoint_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("webhook_endpoint.id", ondelete="CASCADE"), nullable=False
        )
    )
    event: str = Field(sa_type=String(40))
    # What the event is about, e.g. "signature:42": the unit of ordering.
    subject: str = Field(sa_type=String(80))
    # The Standard Webhooks `webhook-id`: the same on every retry, so receivers de-duplicate.
    message_id: str = Field(sa_type=String(40))
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class WebhookAttempt(SQLModel, table=True):
    """One HTTP attempt to deliver an event: the log organisers read."""

    __tablename__ = "webhook_attempt"
    __table_args__ = (Index("ix_webhook_attempt_endpoint", "endpoint_id", "id"),)

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    endpoint_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("webhook_endpoint.id", ondelete="CASCADE"), nullable=False
        )
    )
    outbox_id: int = Field(sa_column=Column(BigInteger().with_variant(Integer, "sqlite")))
    message_id: str = Field(sa_type=String(40))
    event: str = Field(sa_type=String(40))
    attempt: int
    attempted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    status_code: int | None = None
    error: str | None = Field(default=None, sa_type=Text)
    duration_ms: int = 0
    delivered: bool = False


# --- API shapes -------------------------------------------------------------------------------


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = PydanticField(
        max_length=2000,
        examples=["https://crm.example.org/hooks/chorus"],
        description="Where to POST events: http(s); https and a public address in production.",
    )
    events: list[Event] = PydanticField(min_length=1, max_length=len(EVENTS))
    scope: Scope = PydanticField(
        description="counts: no personal data; names: plus names and countries; full: plus "
        "e-mail addresses and postcodes."
    )

    @field_validator("events")
    @classmethod
    def _once_each(cls, events: list[Event]) -> list[Event]:
        return list(dict.fromkeys(events))


class WebhookAdmin(BaseModel):
    id: int
    url: str
    events: list[str]
    scope: Scope
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: DisabledReason | None
    failing_since: datetime | None = PydanticField(
        description="When the failures without a success since began; null when the last "
        "attempt succeeded."
    )
    created_at: datetime


class WebhookCreated(WebhookAdmin):
    secret: str = PydanticField(
        description="The whsec_ secret that signs every delivery (Standard Webhooks). Shown "
        "only now: keep it with the receiver."
    )


class WebhooksAdmin(BaseModel):
    data: list[WebhookAdmin]
    count: int


class WebhookAttemptAdmin(BaseModel):
    id: int
    event: str
    message_id: str = PydanticField(description="The webhook-id header (the same on retries).")
    attempt: int = PydanticField(description="1 for the first try of this event, then 2, ...")
    attempted_at: datetime
    delivered: bool
    status_code: int | None = PydanticField(description="The endpoint's answer; null if none.")
    error: str | None
    duration_ms: int


class WebhookAttempts(BaseModel):
    data: list[WebhookAttemptAdmin]
    next_before: int | None = PydanticField(
        description="Pass as `before` for the next (older) page; null on the last page."
    )
