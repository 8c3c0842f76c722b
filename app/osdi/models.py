"""The OSDI 1.1 documents Chorus serves (HAL+JSON) and the record signature helper's input.

Field names are OSDI's (https://github.com/opensupporter/osdi-docs: aep.md, petitions.md,
signatures.md, people.md, record_signature.md). HAL's `_links` and `_embedded`, and link
relations such as `osdi:signatures`, are aliases; documents are written with
`model_dump(by_alias=True, exclude_none=True)`, so an absent value is an absent field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, PlainSerializer
from pydantic import Field as PydanticField

ORIGIN_SYSTEM = "Chorus"
IDENTIFIER_PREFIX = "chorus:"
EmailStatus = Literal[
    "subscribed",
    "unsubscribed",
    "bouncing",
    "previous bounce",
    "spam complaint",
    "previous spam complaint",
]


def _osdi_time(value: datetime) -> str:
    """`2026-11-30T09:30:00Z`, as OSDI's examples write dates."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Moment = Annotated[datetime, PlainSerializer(_osdi_time, return_type=str)]


class OsdiDocument(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


# --- links ------------------------------------------------------------------------------------


class OsdiLink(OsdiDocument):
    href: str
    title: str | None = None


class OsdiCurie(OsdiDocument):
    name: str
    href: str
    templated: bool


CURIES = [
    OsdiCurie(
        name="osdi",
        href="https://github.com/opensupporter/osdi-docs/blob/master/{rel}.md",
        templated=True,
    )
]


class OsdiLinks(OsdiDocument):
    self: OsdiLink
    curies: list[OsdiCurie] | None = None  # on the document a response is, not on embedded ones


class OsdiPageLinks(OsdiLinks):
    next: OsdiLink | None = None
    prev: OsdiLink | None = None


class OsdiPage(OsdiDocument):
    """OSDI paging: what every collection says about itself."""

    total_pages: int
    per_page: int
    page: int
    total_records: int


# --- the API entry point ----------------------------------------------------------------------


class OsdiAepLinks(OsdiLinks):
    petitions: OsdiLink = PydanticField(alias="osdi:petitions")
    people: OsdiLink = PydanticField(alias="osdi:people")


class OsdiEntryPoint(OsdiDocument):
    motd: str
    max_pagesize: int
    vendor_name: str
    product_name: str
    osdi_version: str
    namespace: str
    links: OsdiAepLinks = PydanticField(alias="_links")


# --- petitions --------------------------------------------------------------------------------


class OsdiTarget(OsdiDocument):
    name: str


class OsdiPetitionLinks(OsdiLinks):
    signatures: OsdiLink = PydanticField(alias="osdi:signatures")
    record_signature_helper: OsdiLink = PydanticField(alias="osdi:record_signature_helper")


class OsdiPetition(OsdiDocument):
    identifiers: list[str]
    origin_system: str = ORIGIN_SYSTEM
    created_date: Moment
    modified_date: Moment
    name: str
    title: str
    description: str
    summary: str
    petition_text: str
    browser_url: str
    total_signatures: int
    target: list[OsdiTarget]
    links: OsdiPetitionLinks = PydanticField(alias="_links")


class OsdiPetitionsLinks(OsdiPageLinks):
    petitions: list[OsdiLink] = PydanticField(alias="osdi:petitions")


class OsdiPetitionsEmbedded(OsdiDocument):
    petitions: list[OsdiPetition] = PydanticField(alias="osdi:petitions")


class OsdiPetitions(OsdiPage):
    links: OsdiPetitionsLinks = PydanticField(alias="_links")
    embedded: OsdiPetitionsEmbedded = PydanticField(alias="_embedded")


# --- signatures -------------------------------------------------------------------------------


class OsdiSignatureLinks(OsdiLinks):
    petition: OsdiLink = PydanticField(alias="osdi:petition")
    # Absent once the signer's personal data was removed (retention): there is no person.
    person: OsdiLink | None = PydanticField(default=None, alias="osdi:person")


class OsdiSignature(OsdiDocument):
    identifiers: list[str]
    origin_system: str = ORIGIN_SYSTEM
    created_date: Moment
    modified_date: Moment
    action_date: Moment
    links: OsdiSignatureLinks = PydanticField(alias="_links")


class OsdiSignaturesLinks(OsdiPageLinks):
    signatures: list[OsdiLink] = PydanticField(alias="osdi:signatures")


class OsdiSignaturesEmbedded(OsdiDocument):
    signatures: list[OsdiSignature] = PydanticField(alias="osdi:signatures")


class OsdiSignatures(OsdiPage):
    links: OsdiSignaturesLinks = PydanticField(alias="_links")
    embedded: OsdiSignaturesEmbedded = PydanticField(alias="_embedded")


# --- people -----------------------------------------------------------------------------------


class OsdiEmailAddress(OsdiDocument):
    address: str
    primary: bool
    status: EmailStatus


class OsdiPostalAddress(OsdiDocument):
    primary: bool
    postal_code: str | None = None
    country: str


class OsdiPerson(OsdiDocument):
    identifiers: list[str]
    origin_system: str = ORIGIN_SYSTEM
    created_date: Moment
    modified_date: Moment
    # Chorus keeps a name as the signer wrote it, in one field: all of it is the given name
    # (README, "OSDI"), never a guessed split.
    given_name: str
    email_addresses: list[OsdiEmailAddress]
    postal_addresses: list[OsdiPostalAddress]
    languages_spoken: list[str]
    links: OsdiLinks = PydanticField(alias="_links")


class OsdiPeopleLinks(OsdiPageLinks):
    people: list[OsdiLink] = PydanticField(alias="osdi:people")


class OsdiPeopleEmbedded(OsdiDocument):
    people: list[OsdiPerson] = PydanticField(alias="osdi:people")


class OsdiPeople(OsdiPage):
    links: OsdiPeopleLinks = PydanticField(alias="_links")
    embedded: OsdiPeopleEmbedded = PydanticField(alias="_embedded")


# --- the record signature helper --------------------------------------------------------------
# OSDI clients send more than Chorus keeps (phone numbers, tags, referrer data, ...): other
# fields are ignored, and these are checked by the same rules as the signing API's.


class OsdiEmailAddressIn(BaseModel):
    address: str = PydanticField(max_length=320, examples=["supporter@example.org"])
    primary: bool | None = None
    status: str | None = PydanticField(
        default=None,
        max_length=40,
        description="`subscribed` records the signer's consent to campaign updates.",
    )


class OsdiPostalAddressIn(BaseModel):
    primary: bool | None = None
    postal_code: str | None = PydanticField(default=None, max_length=60)
    country: str | None = PydanticField(default=None, max_length=60, examples=["KR"])


class OsdiPersonIn(BaseModel):
    given_name: str | None = PydanticField(default=None, max_length=500, examples=["Min-jun"])
    additional_name: str | None = PydanticField(default=None, max_length=500)
    family_name: str | None = PydanticField(default=None, max_length=500, examples=["Kim"])
    email_addresses: list[OsdiEmailAddressIn] = PydanticField(min_length=1, max_length=20)
    postal_addresses: list[OsdiPostalAddressIn] = PydanticField(default_factory=list, max_length=20)
    languages_spoken: list[Annotated[str, PydanticField(max_length=35)]] = PydanticField(
        default_factory=list, max_length=20, examples=[["ko"]]
    )


class OsdiRecordSignature(BaseModel):
    """OSDI's record signature helper body: the person who signs."""

    person: OsdiPersonIn


class OsdiAcceptedLinks(OsdiDocument):
    curies: list[OsdiCurie]
    petition: OsdiLink = PydanticField(alias="osdi:petition")
    signatures: OsdiLink = PydanticField(alias="osdi:signatures")


class OsdiSignatureAccepted(OsdiDocument):
    """The same answer whoever signs (as the signing API's): the signature counts, and appears
    in `osdi:signatures`, once its signer confirms the e-mail address."""

    status: Literal["pending_confirmation"] = "pending_confirmation"
    links: OsdiAcceptedLinks = PydanticField(alias="_links")
