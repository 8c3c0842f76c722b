"""Allow and block lists for signing."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import Column, ForeignKey, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow


class RuleKind(StrEnum):
    ip = "ip"  # stored as the same HMAC as signature.ip_hash
    domain = "domain"
    email = "email"  # the normalised address


class RuleAction(StrEnum):
    allow = "allow"  # never held by the rate limits
    block = "block"  # always held (accepted silently, never confirmed)


class AbuseRule(SQLModel, table=True):
    __tablename__ = "abuse_rule"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: RuleKind = Field(sa_type=String(16))
    value: str = Field(sa_type=String(320))
    action: RuleAction = Field(sa_type=String(16))
    note: str = Field(default="", sa_type=String(200))
    created_by: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("user_account.id", ondelete="SET NULL")),
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: RuleKind
    value: str = PydanticField(
        min_length=1, max_length=320, description="An IP address, a domain or an e-mail address."
    )
    action: RuleAction
    note: str = PydanticField(default="", max_length=200)


class RulePublic(BaseModel):
    id: int
    kind: RuleKind
    value: str
    action: RuleAction
    note: str
    created_at: datetime


class SourceCount(BaseModel):
    source: str
    signatures: int
    held: int


class TrendingReport(BaseModel):
    petition: str
    minutes: int
    ips: list[SourceCount]
    domains: list[SourceCount]


class InvalidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ip: str | None = PydanticField(default=None, max_length=64, description="A raw IP address.")
    ip_hash: str | None = PydanticField(
        default=None, max_length=32, description="As shown in the trending report."
    )
    domain: str | None = PydanticField(default=None, max_length=255)
    country: str | None = PydanticField(default=None, min_length=2, max_length=2)
    created_from: datetime | None = None
    created_to: datetime | None = None
    held_only: bool = False


class InvalidateResult(BaseModel):
    invalidated: int
    uncounted: int
    signature_count: int


class SigningSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paused: bool
