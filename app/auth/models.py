"""Accounts of the people who run Chorus: admins and organisers, and their access tokens."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import Column, ForeignKey, Index, Integer, String
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow


class Role(StrEnum):
    admin = "admin"  # everything, every campaign
    organiser = "organiser"  # only the campaigns they are members of


class TokenKind(StrEnum):
    session = "session"  # from the password login; expires
    api = "api"  # long-lived, for scripts; revocable
    console = "console"  # the console's sign-in cookie; expires after inactivity


class User(SQLModel, table=True):
    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_type=String(320), unique=True, index=True)
    name: str = Field(default="", sa_type=String(100))
    password_hash: str = Field(sa_type=String(255))
    role: Role = Field(default=Role.organiser, sa_type=String(16))
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    # The language the console speaks to this person (en, ko, uk); None: their browser's.
    locale: str | None = Field(default=None, sa_type=String(8))
    # Raised by a password or role change and by deactivation: session tokens carry the value
    # they were issued under and stop working once it moves on (a counter, not a timestamp, so
    # servers' clocks do not matter).
    credentials_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class CampaignMember(SQLModel, table=True):
    __tablename__ = "campaign_member"

    campaign_id: int = Field(
        sa_column=Column(Integer, ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True)
    )
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
        )
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class ApiToken(SQLModel, table=True):
    """A bearer token, stored only as its SHA-256: a database leak reveals no usable token."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("user_account.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    kind: TokenKind = Field(sa_type=String(16))
    name: str = Field(default="", sa_type=String(100))
    token_hash: str = Field(sa_type=String(64), unique=True)
    prefix: str = Field(sa_type=String(16))  # shown in listings so people can tell tokens apart
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The user's credentials_version when a session token was issued (see User).
    credentials_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class LoginFailure(SQLModel, table=True):
    """A failed sign-in, kept briefly to slow down password guessing (per address and per IP)."""

    __tablename__ = "login_failure"
    __table_args__ = (
        Index("ix_login_failure_email_created", "email", "created_at"),
        Index("ix_login_failure_ip_created", "ip_hash", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_type=String(320))
    ip_hash: str | None = Field(default=None, sa_type=String(32))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


# --- API shapes -------------------------------------------------------------------------------


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)
    expires_in: int


class UserPublic(BaseModel):
    id: int
    email: str
    name: str
    role: Role
    is_active: bool
    campaigns: list[str]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = PydanticField(max_length=320)
    name: str = PydanticField(default="", max_length=100)
    password: str = PydanticField(min_length=12, max_length=200)
    role: Role = Role.organiser
    campaigns: list[str] = PydanticField(default_factory=list, max_length=100)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = PydanticField(default=None, max_length=100)
    password: str | None = PydanticField(default=None, min_length=12, max_length=200)
    role: Role | None = None
    is_active: bool | None = None
    campaigns: list[str] | None = PydanticField(default=None, max_length=100)


class ApiTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = PydanticField(min_length=1, max_length=100)
    expires_in_days: int | None = PydanticField(default=None, ge=1, le=3650)


class ApiTokenPublic(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenPublic):
    token: str = PydanticField(description="Shown once; store it safely.")
