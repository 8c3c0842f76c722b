"""Campaigns: the organisation-level container for petitions, targets and donations."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from pydantic import Field as PydanticField
from pydantic_core import PydanticCustomError
from sqlalchemy import JSON, Column, String
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow
from app.core.i18n import SUPPORTED_LOCALES
from app.core.origins import web_origin
from app.donations.currencies import CURRENCIES


class Campaign(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(sa_type=String(80), unique=True, index=True)
    default_locale: str = Field(sa_type=String(8), default="en")
    # {locale: {"name": ..., "description": ...}}, as Decidim keeps translated fields.
    translations: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    # ISO 4217 codes the campaign accepts donations in.
    currencies: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Origins of the sites that may show its petitions' sign form in a frame (/embed/...).
    embed_origins: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


# --- API shapes -------------------------------------------------------------------------------
#
# Field rules shared by the admin API of campaigns, petitions and targets. Each raises a
# PydanticCustomError with a stable `type`, so a 422 names the field and says what is wrong.

SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")
KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,59}")
# Line breaks and tabs are allowed in multi-line texts; no other control character anywhere
# (PostgreSQL refuses NUL, and the rest only hides things from readers).
MULTILINE_OK = frozenset("\n\r\t")


def check_slug(value: str) -> str:
    if not SLUG_PATTERN.fullmatch(value):
        raise PydanticCustomError(
            "slug_invalid",
            "Use 1 to 80 lower-case letters (a-z), digits and hyphens, starting with a letter "
            "or digit",
        )
    return value


def check_key(value: str) -> str:
    if not KEY_PATTERN.fullmatch(value):
        raise PydanticCustomError(
            "key_invalid",
            "Use 1 to 60 lower-case letters (a-z), digits and hyphens, starting with a letter "
            "or digit",
        )
    return value


def check_locale(value: str) -> str:
    if value not in SUPPORTED_LOCALES:
        raise PydanticCustomError(
            "locale_unsupported",
            "Choose one of the supported languages: {supported}",
            {"supported": ", ".join(SUPPORTED_LOCALES)},
        )
    return value


def _check_characters(value: str, allowed: frozenset[str]) -> str:
    for char in value:
        if unicodedata.category(char) == "Cc" and char not in allowed:
            raise PydanticCustomError(
                "text_control_character",
                "Remove the control character {char}",
                {"char": f"U+{ord(char):04X}"},
            )
    return value


def single_line(value: str) -> str:
    return _check_characters(value, frozenset())


def multi_line(value: str) -> str:
    return _check_characters(value, MULTILINE_OK)


def check_currencies(value: list[str]) -> list[str]:
    codes = [code.strip().upper() for code in value]
    unknown = [code for code in codes if code not in CURRENCIES]
    if unknown:
        raise PydanticCustomError(
            "currency_unsupported",
            "Unsupported currency {unknown}; choose among {supported}",
            {"unknown": ", ".join(unknown), "supported": ", ".join(CURRENCIES)},
        )
    if len(set(codes)) != len(codes):
        raise PydanticCustomError("currency_duplicate", "Name each currency once")
    return codes


def check_origins(value: list[str]) -> list[str]:
    origins = [web_origin(origin) for origin in value]
    if len(set(origins)) != len(origins):
        raise PydanticCustomError("origin_duplicate", "Name each origin once")
    return origins


Slug = Annotated[str, StringConstraints(max_length=80), AfterValidator(check_slug)]
Key = Annotated[str, StringConstraints(max_length=60), AfterValidator(check_key)]
Locale = Annotated[str, StringConstraints(max_length=8), AfterValidator(check_locale)]


def line(max_length: int, *, min_length: int = 1) -> tuple[Any, ...]:
    """Metadata for a one-line text, trimmed: `Annotated[str, *line(200)]`."""
    return (
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        AfterValidator(single_line),
    )


def paragraphs(max_length: int, *, min_length: int = 1) -> tuple[Any, ...]:
    """Metadata for a multi-line text (paragraphs between blank lines), trimmed."""
    return (
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        AfterValidator(multi_line),
    )


Currencies = Annotated[
    list[Annotated[str, StringConstraints(max_length=3)]],
    PydanticField(max_length=20),
    AfterValidator(check_currencies),
]
EmbedOrigins = Annotated[
    list[Annotated[str, StringConstraints(max_length=300)]],
    PydanticField(max_length=20),
    AfterValidator(check_origins),
]
EMBED_ORIGINS_DESCRIPTION = (
    "Origins (https://example.org, with a port when not the usual one) of the sites that may "
    "show the campaign's petitions in a frame (/embed/petitions/{slug}); empty: none may."
)


class CampaignText(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, *line(200)]
    description: Annotated[str, *paragraphs(5000, min_length=0)] = ""


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Slug = PydanticField(examples=["protect-captured-north-korean-soldiers"])
    default_locale: Locale = "en"
    translations: dict[Locale, CampaignText] = PydanticField(
        min_length=1, description="{locale: {name, description}}; the default locale is required."
    )
    currencies: Currencies = PydanticField(
        default_factory=list,
        description="ISO 4217 codes donations are taken in.",
        examples=[["EUR"]],
    )
    embed_origins: EmbedOrigins = PydanticField(
        default_factory=list,
        description=EMBED_ORIGINS_DESCRIPTION,
        examples=[["https://www.example.org"]],
    )


class CampaignUpdate(BaseModel):
    """Only the fields sent change. `translations` replaces the languages given (null removes
    one); the others stay."""

    model_config = ConfigDict(extra="forbid")

    default_locale: Locale | None = None
    translations: dict[Locale, CampaignText | None] | None = None
    currencies: Currencies | None = None
    embed_origins: EmbedOrigins | None = PydanticField(
        default=None, description=EMBED_ORIGINS_DESCRIPTION
    )


class CampaignAdmin(BaseModel):
    slug: str
    default_locale: str
    locales: list[str]
    translations: dict[str, dict[str, str]]
    currencies: list[str]
    embed_origins: list[str]
    created_at: datetime


class CampaignsAdmin(BaseModel):
    data: list[CampaignAdmin]
    count: int
