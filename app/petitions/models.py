"""Petitions, their translations, and the targets they are addressed to."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict
from pydantic import Field as PydanticField
from pydantic_core import PydanticCustomError
from sqlalchemy import JSON, Column, ForeignKey, Integer, String, false
from sqlmodel import Field, SQLModel

from app.campaigns.models import Locale, Slug, line, paragraphs
from app.core.db import UTCDateTime, utcnow
from app.targets.models import TargetAdmin


class PetitionStatus(StrEnum):
    draft = "draft"
    open = "open"
    closed = "closed"
    archived = "archived"


class Petition(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    slug: str = Field(sa_type=String(80), unique=True, index=True)
    status: PetitionStatus = Field(default=PetitionStatus.draft, sa_type=String(16), nullable=False)
    goal: int = Field(default=1000, ge=1)
    default_locale: str = Field(sa_type=String(8), default="en")
    # {locale: {"title": ..., "summary": ..., "body": ...}}
    translations: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    opens_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closes_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The emergency switch: an open petition that takes no signatures for now.
    signing_paused: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    # When it stopped taking signatures (status closed); starts the retention period.
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)

    @property
    def locales(self) -> list[str]:
        """Available languages, the default first."""
        rest = sorted(k for k in self.translations if k != self.default_locale)
        return [self.default_locale, *rest] if self.default_locale in self.translations else rest

    def text(self, locale: str) -> dict[str, str]:
        text: dict[str, str] = (
            self.translations.get(locale) or self.translations[self.default_locale]
        )
        return text


class PetitionTarget(SQLModel, table=True):
    __tablename__ = "petition_target"

    petition_id: int = Field(
        sa_column=Column(Integer, ForeignKey("petition.id", ondelete="CASCADE"), primary_key=True)
    )
    target_id: int = Field(
        sa_column=Column(Integer, ForeignKey("target.id", ondelete="CASCADE"), primary_key=True)
    )
    position: int = 0


# --- API shapes -------------------------------------------------------------------------------


class CountryCount(BaseModel):
    country: str
    count: int


class TargetPublic(BaseModel):
    name: str
    role: str
    organisation: str
    country: str


class PetitionPublic(BaseModel):
    slug: str
    campaign: str
    status: PetitionStatus
    locale: str
    locales: list[str]
    title: str
    summary: str
    body: str
    goal: int
    signature_count: int
    signatures_by_country: list[CountryCount]
    opens_at: datetime | None
    closes_at: datetime | None
    url: str
    targets: list[TargetPublic]


class PetitionSummary(BaseModel):
    slug: str
    status: PetitionStatus
    locale: str
    title: str
    summary: str
    goal: int
    signature_count: int
    url: str


class PetitionsPublic(BaseModel):
    data: list[PetitionSummary]
    count: int


# --- admin API shapes -------------------------------------------------------------------------

GOAL_MAX = 100_000_000
DB_INT_MAX = 2**31 - 1


def check_moment(value: datetime) -> datetime:
    """A timezone-aware moment that converts to UTC within years 2000 to 9998."""
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:
        in_utc = None
    if in_utc is None or not 2000 <= in_utc.year <= 9998:
        raise PydanticCustomError("datetime_range", "Give a date between the years 2000 and 9998")
    return in_utc


Moment = Annotated[AwareDatetime, AfterValidator(check_moment)]
Goal = Annotated[int, PydanticField(ge=1, le=GOAL_MAX)]
TargetId = Annotated[int, PydanticField(ge=1, le=DB_INT_MAX)]


class PetitionText(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, *line(200)]
    summary: Annotated[str, *paragraphs(500)]
    body: Annotated[str, *paragraphs(20_000)]


class PetitionCreate(BaseModel):
    """A new petition; it starts as a draft."""

    model_config = ConfigDict(extra="forbid")

    slug: Slug = PydanticField(examples=["no-forced-return"])
    goal: Goal = PydanticField(description="Confirmed signatures aimed for.", examples=[100000])
    default_locale: Locale = "en"
    translations: dict[Locale, PetitionText] = PydanticField(
        min_length=1,
        description="{locale: {title, summary, body}}; the default locale is required.",
    )
    opens_at: Moment | None = None
    closes_at: Moment | None = None


class PetitionUpdate(BaseModel):
    """Only the fields sent change. `translations` replaces the languages given (null removes
    one); the others stay. `opens_at`/`closes_at` may be null to clear them."""

    model_config = ConfigDict(extra="forbid")

    goal: Goal | None = None
    default_locale: Locale | None = None
    translations: dict[Locale, PetitionText | None] | None = None
    opens_at: Moment | None = None
    closes_at: Moment | None = None


class PetitionStatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: PetitionStatus


class PetitionTargetsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_ids: list[TargetId] = PydanticField(
        max_length=200, description="The campaign's targets, in the order the petition lists them."
    )


class PetitionAdmin(BaseModel):
    slug: str
    campaign: str
    status: PetitionStatus
    goal: int
    default_locale: str
    locales: list[str]
    translations: dict[str, dict[str, str]]
    signature_count: int
    opens_at: datetime | None
    closes_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    url: str
    targets: list[TargetAdmin]


class PetitionAdminSummary(BaseModel):
    slug: str
    campaign: str
    status: PetitionStatus
    goal: int
    default_locale: str
    locales: list[str]
    title: str
    signature_count: int
    opens_at: datetime | None
    closes_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    url: str


class PetitionsAdmin(BaseModel):
    data: list[PetitionAdminSummary]
    count: int
