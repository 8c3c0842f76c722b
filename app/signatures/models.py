"""Signatures and the sharded tallies that serve confirmed counts without scanning them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from app.core import addresses
from app.core.db import UTCDateTime, utcnow
from app.signatures import validation


class SignatureStatus(StrEnum):
    pending = "pending"
    confirmed = "confirmed"
    withdrawn = "withdrawn"  # by the signer; no longer counted
    suspect = "suspect"  # held by the abuse controls: no confirmation e-mail until released
    invalidated = "invalidated"  # removed by an organiser (bulk invalidation); not counted


class Signature(SQLModel, table=True):
    __table_args__ = (
        # One signature per person per petition; the database enforces it, also under races.
        UniqueConstraint("petition_id", "email_normalised", name="uq_signature_petition_email"),
        Index("ix_signature_petition_status", "petition_id", "status"),
        # Exports page through a petition's signatures by id.
        Index("ix_signature_petition_id_id", "petition_id", "id"),
        # Rate limits and the trending report count recent signatures per source.
        Index("ix_signature_ip_created", "ip_hash", "created_at"),
        Index("ix_signature_domain_created", "email_domain", "created_at"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    petition_id: int = Field(
        sa_column=Column(Integer, ForeignKey("petition.id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(sa_type=String(100))
    email: str = Field(sa_type=String(320))
    email_normalised: str = Field(sa_type=String(320))
    country: str = Field(sa_type=String(2))
    postcode: str | None = Field(default=None, sa_type=String(16))
    consent_updates: bool = False
    locale: str = Field(sa_type=String(8))
    status: SignatureStatus = Field(
        default=SignatureStatus.pending, sa_type=String(16), nullable=False
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # How many confirmation e-mails were queued for this signature (capped).
    confirmation_sends: int = 1
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # HMAC of the signer's IP address (never the address itself), and the e-mail's domain.
    ip_hash: str | None = Field(default=None, sa_type=String(32))
    email_domain: str | None = Field(default=None, sa_type=String(255))
    # Why the abuse controls held it (honeypot, blocked, rate-ip, rate-domain).
    held_reason: str | None = Field(default=None, sa_type=String(32))
    # Set when personal data was removed (retention); the row stays so totals stay right.
    anonymised_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SignatureTally(SQLModel, table=True):
    """Confirmed signatures per petition and country, split over a few shard rows.

    Each confirmation increments one shard row chosen by the signature id, so concurrent
    confirmations rarely wait on the same row lock (the single hot counter row is what took
    the UK petitions site down). A count is the sum of a handful of rows, never a scan.
    """

    __tablename__ = "signature_tally"
    __table_args__ = (PrimaryKeyConstraint("petition_id", "country", "shard"),)

    petition_id: int = Field(
        sa_column=Column(Integer, ForeignKey("petition.id", ondelete="CASCADE"), nullable=False)
    )
    country: str = Field(sa_type=String(2), nullable=False)
    shard: int = Field(nullable=False)
    count: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class SignatureHourlyTally(SQLModel, table=True):
    """Confirmed signatures per petition and hour (UTC), sharded like SignatureTally."""

    __tablename__ = "signature_hourly_tally"
    __table_args__ = (PrimaryKeyConstraint("petition_id", "hour", "shard"),)

    petition_id: int = Field(
        sa_column=Column(Integer, ForeignKey("petition.id", ondelete="CASCADE"), nullable=False)
    )
    hour: datetime = Field(sa_type=UTCDateTime, nullable=False)
    shard: int = Field(nullable=False)
    count: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


# --- API shapes -------------------------------------------------------------------------------


class Supporter(BaseModel):
    """Who a supporter is, as signing and letters ask it. Field rules live in
    `app.signatures.validation`."""

    model_config = ConfigDict(extra="forbid")

    name: str = PydanticField(max_length=500, examples=["Kim Min-jun"])
    email: str = PydanticField(max_length=320, examples=["supporter@example.org"])
    country: str = PydanticField(max_length=60, examples=["KR"])
    locale: str | None = PydanticField(default=None, max_length=35, examples=["ko"])
    captcha_token: str | None = PydanticField(
        default=None,
        max_length=4096,
        description="The CAPTCHA answer, when the site has CAPTCHA_PROVIDER set.",
    )

    _name = field_validator("name")(validation.check_name)
    _email = field_validator("email")(addresses.check_email)
    _country = field_validator("country")(addresses.check_country)


class SignatureCreate(Supporter):
    """What a supporter submits to sign."""

    postcode: str | None = PydanticField(default=None, max_length=60)
    consent_updates: bool = False

    _postcode = field_validator("postcode")(validation.check_postcode)


class SignatureAccepted(BaseModel):
    status: Literal["pending_confirmation"] = "pending_confirmation"


class ConfirmRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str


class ConfirmResult(BaseModel):
    status: Literal["confirmed", "already_confirmed"]
    petition: str
    signature_count: int
