"""Targets: the officials (ministers, ministries, envoys) that petitions and letters address."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import pycountry
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from pydantic import Field as PydanticField
from pydantic_core import PydanticCustomError
from sqlalchemy import JSON, Column, ForeignKey, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.campaigns.models import Key, Locale, line, paragraphs
from app.core import addresses
from app.core.db import UTCDateTime, utcnow


class DeliveryChannel(StrEnum):
    email = "email"
    postal = "postal"


class TargetGroup(SQLModel, table=True):
    __tablename__ = "target_group"
    __table_args__ = (UniqueConstraint("campaign_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(
        sa_column=Column(Integer, ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False)
    )
    key: str = Field(sa_type=String(60))
    names: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Target(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("campaign_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    group_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("target_group.id", ondelete="SET NULL")),
    )
    key: str = Field(sa_type=String(60))
    # The default name, role and organisation: shown in any language without a translation.
    name: str = Field(sa_type=String(200))
    role: str = Field(sa_type=String(200), default="")
    organisation: str = Field(sa_type=String(200), default="")
    # {locale: {"name": ..., "role": ..., "organisation": ...}}, as petitions keep their texts;
    # an empty field in a translation is taken from the default above.
    translations: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False, server_default="{}"),
    )
    country: str = Field(sa_type=String(2))
    language: str = Field(sa_type=String(8))
    email: str | None = Field(default=None, sa_type=String(320))
    postal_address: str | None = Field(default=None, sa_type=String(1000))
    delivery_channel: DeliveryChannel = Field(
        default=DeliveryChannel.email, sa_type=String(16), nullable=False
    )
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)

    def text(self, language: str | None) -> dict[str, str]:
        """The official's `name`, `role` and `organisation` in `language`: its translation in
        that language (else in its base language, `pt` for `pt-BR`), each field missing there
        taken from the default."""
        found: dict[str, str] = {}
        if language:
            found = (
                self.translations.get(language)
                or self.translations.get(language.split("-")[0])
                or {}
            )
        return {
            "name": found.get("name") or self.name,
            "role": found.get("role") or self.role,
            "organisation": found.get("organisation") or self.organisation,
        }


# --- admin API shapes -------------------------------------------------------------------------

# A short BCP 47 tag: an ISO 639 language, optionally a script or a region ("pt-BR", "zh-Hant").
LANGUAGE_RE = re.compile(r"([a-z]{2,3})(?:-([a-z]{4}|[a-z]{2}|[0-9]{3}))?")


def check_language(value: str) -> str:
    match = LANGUAGE_RE.fullmatch(value.strip().lower())
    language = match and (
        pycountry.languages.get(alpha_2=match[1])
        if len(match[1]) == 2
        else pycountry.languages.get(alpha_3=match[1])
    )
    if match is None or language is None:
        raise PydanticCustomError(
            "language_invalid",
            "Give a language code such as en, ko, uk, or a short BCP 47 tag such as pt-BR",
        )
    subtag = match[2]
    if subtag is None:
        return match[1]
    if len(subtag) == 4:
        return f"{match[1]}-{subtag.title()}"
    if subtag.isalpha() and subtag.upper() not in addresses.COUNTRY_CODES:
        raise PydanticCustomError(
            "language_invalid",
            "Unknown region {region} in the language tag",
            {"region": subtag.upper()},
        )
    return f"{match[1]}-{subtag.upper()}"


Language = Annotated[str, StringConstraints(max_length=35), AfterValidator(check_language)]
Country = Annotated[str, StringConstraints(max_length=60), AfterValidator(addresses.check_country)]
Email = Annotated[str, StringConstraints(max_length=320), AfterValidator(addresses.check_email)]
PostalAddress = Annotated[str, *paragraphs(1000)]
GroupNames = Annotated[dict[Locale, Annotated[str, *line(200)]], PydanticField(max_length=10)]


class TargetText(BaseModel):
    """The official in one language. A role or organisation left empty is taken from the
    default (the target's own `role`, `organisation`)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, *line(200)]
    role: Annotated[str, *line(200, min_length=0)] = ""
    organisation: Annotated[str, *line(200, min_length=0)] = ""


TRANSLATIONS_DESCRIPTION = (
    "{locale: {name, role, organisation}}: the official in the petitions' other languages. "
    "Pages and letters in a language without one show the default name, role and organisation."
)
TRANSLATIONS_EXAMPLE = {
    "ko": {"name": "우크라이나 대통령", "role": "대통령", "organisation": "우크라이나 대통령실"},
    "uk": {
        "name": "Президент України",
        "role": "Президент",
        "organisation": "Офіс Президента України",
    },
}


class TargetCreate(BaseModel):
    """An official a petition can address. The e-mail channel needs `email`; the postal one
    needs `postal_address`."""

    model_config = ConfigDict(extra="forbid")

    key: Key = PydanticField(examples=["ua-president"])
    name: Annotated[str, *line(200)]
    role: Annotated[str, *line(200, min_length=0)] = ""
    organisation: Annotated[str, *line(200, min_length=0)] = ""
    country: Country = PydanticField(examples=["UA"])
    language: Language = PydanticField(examples=["uk"])
    email: Email | None = None
    postal_address: PostalAddress | None = None
    delivery_channel: DeliveryChannel = DeliveryChannel.email
    translations: dict[Locale, TargetText] = PydanticField(
        default_factory=dict,
        max_length=20,
        description=TRANSLATIONS_DESCRIPTION,
        examples=[TRANSLATIONS_EXAMPLE],
    )
    group: Key | None = PydanticField(
        default=None, description="The group's key; a new key creates the group."
    )
    group_names: GroupNames | None = PydanticField(
        default=None, description="{locale: name} of the group, when creating or renaming it."
    )


class TargetUpdate(BaseModel):
    """Only the fields sent change; `email`, `postal_address` and `group` may be null.
    `translations` replaces the languages given (null removes one); the others stay."""

    model_config = ConfigDict(extra="forbid")

    key: Key | None = None
    name: Annotated[str, *line(200)] | None = None
    role: Annotated[str, *line(200, min_length=0)] | None = None
    organisation: Annotated[str, *line(200, min_length=0)] | None = None
    country: Country | None = None
    language: Language | None = None
    email: Email | None = None
    postal_address: PostalAddress | None = None
    delivery_channel: DeliveryChannel | None = None
    translations: dict[Locale, TargetText | None] | None = PydanticField(
        default=None,
        max_length=20,
        description="{locale: {name, role, organisation} or null}: replaces the languages "
        "given, null removes one; the others stay.",
        examples=[TRANSLATIONS_EXAMPLE],
    )
    group: Key | None = None
    group_names: GroupNames | None = None


class TargetAdmin(BaseModel):
    id: int
    key: str
    name: str
    role: str
    organisation: str
    country: str
    language: str
    email: str | None
    postal_address: str | None
    delivery_channel: DeliveryChannel
    translations: dict[str, dict[str, str]] = PydanticField(
        description="{locale: {name, role, organisation}}; the fields above are the default."
    )
    group: str | None
    retired_at: datetime | None
    created_at: datetime


class TargetGroupAdmin(BaseModel):
    key: str
    names: dict[str, str]


class TargetsAdmin(BaseModel):
    groups: list[TargetGroupAdmin]
    data: list[TargetAdmin]
    count: int
