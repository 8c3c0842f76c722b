"""Letter templates, supporter letters, petition deliveries and the per-target delivery log."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from app.campaigns.models import Key, Locale, line, paragraphs
from app.core import addresses
from app.core.db import UTCDateTime, utcnow
from app.signatures.models import Supporter
from app.targets.models import DeliveryChannel


class TemplateKind(StrEnum):
    supporter = "supporter"  # the frame of a supporter's letter: it must place {{ message }}
    delivery = "delivery"  # the letter that delivers a petition and its count to a target


class LetterTemplate(SQLModel, table=True):
    __tablename__ = "letter_template"
    __table_args__ = (UniqueConstraint("campaign_id", "kind", "language"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(
        sa_column=Column(Integer, ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False)
    )
    kind: TemplateKind = Field(sa_type=String(16))
    language: str = Field(sa_type=String(8))
    subject: str = Field(sa_type=String(500))
    body: str = Field(sa_type=Text)
    # The text a supporter starts from and personalises (plain text, never run as a template).
    message: str = Field(default="", sa_type=Text)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class LetterStatus(StrEnum):
    unconfirmed = "unconfirmed"  # waiting for the supporter to confirm their e-mail
    confirmed = "confirmed"  # its deliveries exist
    superseded = "superseded"  # the supporter confirmed a newer letter to the same petition


class HoldReason(StrEnum):
    near_duplicate = "near-duplicate"  # nearly identical to many others: an organiser decides
    daily_cap = "daily-cap"  # the target's daily cap is reached: sent on a later day
    suspect = "suspect"  # honeypot, blocked source or over the rate limit: never sent


class Letter(SQLModel, table=True):
    """What a supporter wrote, to one or more of a petition's targets."""

    __table_args__ = (
        Index("ix_letter_campaign_created", "campaign_id", "created_at"),
        Index("ix_letter_petition_email", "petition_id", "email_normalised"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(
        sa_column=Column(Integer, ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False)
    )
    petition_id: int = Field(
        sa_column=Column(Integer, ForeignKey("petition.id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(sa_type=String(100))
    email: str = Field(sa_type=String(320))
    email_normalised: str = Field(sa_type=String(320))
    city: str = Field(default="", sa_type=String(100))
    country: str = Field(sa_type=String(2))
    # The letter's language: the template's, and the language the supporter wrote in.
    locale: str = Field(sa_type=String(8))
    message: str = Field(sa_type=Text)
    target_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The message's MinHash signature (64 x 32 bits): how near-duplicates are recognised.
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    held_reason: HoldReason | None = Field(default=None, sa_type=String(16))
    # HMAC of the writer's IP address (as for signatures), for the rate limit.
    ip_hash: str | None = Field(default=None, sa_type=String(32), index=True)
    status: LetterStatus = Field(
        default=LetterStatus.unconfirmed, sa_type=String(16), nullable=False
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LetterBand(SQLModel, table=True):
    """Locality-sensitive hashes of a letter's signature: letters sharing a band are candidate
    near-duplicates, found through the index instead of comparing with every letter."""

    __tablename__ = "letter_band"
    __table_args__ = (PrimaryKeyConstraint("campaign_id", "band_hash", "letter_id"),)

    campaign_id: int = Field(
        sa_column=Column(Integer, ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False)
    )
    band_hash: int = Field(sa_column=Column(BigInteger, nullable=False))
    letter_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("letter.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )


class PetitionDelivery(SQLModel, table=True):
    """One delivery of a petition to its targets, with the annex frozen at that moment."""

    __tablename__ = "petition_delivery"
    __table_args__ = (UniqueConstraint("petition_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    petition_id: int = Field(
        sa_column=Column(Integer, ForeignKey("petition.id", ondelete="CASCADE"), nullable=False)
    )
    number: int  # 1 for the first delivery of the petition, 2 for a new delivery, ...
    created_by: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("user_account.id", ondelete="SET NULL"))
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    confirmed_count: int
    # [{"country": "UA", "count": 120}, ...], largest first.
    countries: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    annex_fields: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    annex_rows: int
    annex_bytes: int
    annex_sha256: str = Field(sa_type=String(64))
    # The CSV annex, gzip-compressed: what was hashed is exactly what is sent, on every retry.
    annex_gzip: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class DeliveryState(StrEnum):
    queued = "queued"
    sent = "sent"  # accepted by the SMTP server, or marked posted (postal)
    failed = "failed"  # refused for good, or given up after the outbox's retries
    held = "held"  # see `reason`: waiting for an organiser, or for a later day
    cancelled = "cancelled"  # no longer applies (target retired, letter superseded, discarded)


class LetterDelivery(SQLModel, table=True):
    """The delivery log: one row per letter per target."""

    __tablename__ = "letter_delivery"
    __table_args__ = (
        Index("ix_letter_delivery_target_day", "target_id", "scheduled_on"),
        Index("ix_letter_delivery_petition", "petition_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    petition_id: int = Field(
        sa_column=Column(Integer, ForeignKey("petition.id", ondelete="CASCADE"), nullable=False)
    )
    target_id: int = Field(
        sa_column=Column(Integer, ForeignKey("target.id", ondelete="CASCADE"), nullable=False)
    )
    letter_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("letter.id", ondelete="CASCADE"), index=True),
    )
    petition_delivery_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("petition_delivery.id", ondelete="CASCADE")),
    )
    channel: DeliveryChannel = Field(sa_type=String(16))
    # queued, held or cancelled as decided here; once the outbox has sent or given up on the
    # e-mail, the outbox's status is the truth (see service.STATE).
    state: DeliveryState = Field(default=DeliveryState.queued, sa_type=String(16))
    reason: str | None = Field(default=None, sa_type=String(500))
    # The day it counts against the target's daily cap (UTC).
    scheduled_on: date = Field(sa_column=Column(Date, nullable=False))
    outbox_id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, ForeignKey("outbox_message.id", ondelete="SET NULL")),
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    posted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# --- API shapes -------------------------------------------------------------------------------

Subject = Annotated[str, *line(500)]
TemplateText = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]


class TemplateSave(BaseModel):
    """A letter template. `subject` and `body` are Jinja2 (see README, "Letter templates");
    `message` is the plain text supporters start from (supporter templates only)."""

    model_config = ConfigDict(extra="forbid")

    subject: Subject = PydanticField(examples=["Do not send {{ petition.title }} back"])
    body: TemplateText = PydanticField(
        examples=[
            "Dear {{ target.name }},\n\n{{ message }}\n\nYours sincerely,\n{{ supporter.name }}"
        ]
    )
    message: Annotated[str, *paragraphs(10_000, min_length=0)] = ""


class TemplateAdmin(BaseModel):
    kind: TemplateKind
    language: str
    subject: str
    body: str
    message: str
    updated_at: datetime


class TemplatesAdmin(BaseModel):
    data: list[TemplateAdmin]
    variables: dict[str, dict[str, list[str]]] = PydanticField(
        description="{kind: {variable: [fields]}}: what each kind of template may use."
    )


class SampleSupporter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, *line(100)] = "Alex Example"
    city: Annotated[str, *line(100, min_length=0)] = "Kyiv"
    country: str = PydanticField(default="UA", max_length=60)

    _country = field_validator("country")(addresses.check_country)


class PreviewRequest(BaseModel):
    """Render a template for one target. Without `subject`/`body`, the saved template is used;
    with them, the unsaved text is checked and rendered (nothing is saved)."""

    model_config = ConfigDict(extra="forbid")

    target_id: int = PydanticField(ge=1, le=2_147_483_647)
    petition: str | None = PydanticField(
        default=None, max_length=80, description="Slug; default: the campaign's first petition."
    )
    supporter: SampleSupporter = SampleSupporter()
    message: Annotated[str, *paragraphs(10_000, min_length=0)] | None = None
    subject: Subject | None = None
    body: TemplateText | None = None


class Preview(BaseModel):
    subject: str
    text: str
    html: str


class LetterCreate(Supporter):
    """A supporter's letter to some of the petition's targets (by target key)."""

    city: Annotated[str, *line(100, min_length=0)] = ""
    targets: list[Key] = PydanticField(min_length=1, max_length=50, examples=[["ua-president"]])
    message: Annotated[str, *paragraphs(10_000, min_length=20)]


class LetterAccepted(BaseModel):
    status: Literal["pending_confirmation"] = "pending_confirmation"
    held: bool = PydanticField(
        description="True when the letter is nearly identical to many others: it is held for "
        "an organiser's review. A personalised letter, once confirmed, replaces it."
    )
    detail: str | None = None


class LetterConfirmResult(BaseModel):
    status: Literal["confirmed", "already_confirmed"]
    petition: str
    held: bool
    targets: int


class LetterTemplatePublic(BaseModel):
    """What a supporter's letter starts from, in one language."""

    language: str
    message: str
    targets: list[dict[str, str]]


class DeliveryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    annex_fields: list[Literal["postcode", "confirmed_at"]] = PydanticField(
        default_factory=list,
        max_length=2,
        description="Columns beyond name and country for the annex. E-mail addresses are "
        "never given to officials.",
    )
    new: bool = PydanticField(
        default=False,
        description="Deliver again even if the petition was delivered before. Without it, a "
        "repeated call returns the existing delivery and sends nothing.",
    )


class DeliveryLogEntry(BaseModel):
    id: int
    kind: Literal["supporter", "petition"]
    letter_id: int | None
    delivery_number: int | None
    target: str
    channel: DeliveryChannel
    state: DeliveryState
    reason: str | None
    attempts: int
    scheduled_on: date
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


class DeliveryLog(BaseModel):
    data: list[DeliveryLogEntry]
    next_after: int | None = PydanticField(
        description="Pass as `after` for the next page; null on the last page."
    )


class CountrySummary(BaseModel):
    country: str
    count: int


class PetitionDeliveryAdmin(BaseModel):
    number: int
    created_at: datetime
    confirmed_count: int
    countries: list[CountrySummary]
    annex_fields: list[str]
    annex_rows: int
    annex_bytes: int
    annex_sha256: str
    letters: list[DeliveryLogEntry]


class PetitionDeliveriesAdmin(BaseModel):
    data: list[PetitionDeliveryAdmin]


__all__ = ["Key", "Locale"]
