"""OSDI 1.1 documents over Chorus's petitions, signatures and signers, and the record signature
helper's reading of an OSDI person as a signature.

Everything is read through the other domains' services and scoped as the admin API is: an
admin reads every campaign, an organiser the campaigns they are a member of; anything else is
404 (one thing) or absent (a collection). What OSDI calls a person is, in Chorus, an e-mail
address with confirmed signatures (app/signatures/directory.py); a person's document is made
of the signatures the reader may see, and nothing else.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass
from math import ceil
from typing import TypeVar
from urllib.parse import urlencode

from pydantic import ValidationError
from sqlmodel import Session

from app.auth import service as auth_service
from app.auth.models import User
from app.core.config import Settings
from app.core.errors import FieldError, ProblemError, field_errors_from_pydantic
from app.email import service as email_service
from app.email.models import SuppressionReason
from app.osdi.models import (
    CURIES,
    IDENTIFIER_PREFIX,
    EmailStatus,
    OsdiAcceptedLinks,
    OsdiAepLinks,
    OsdiEmailAddress,
    OsdiEmailAddressIn,
    OsdiEntryPoint,
    OsdiLink,
    OsdiLinks,
    OsdiPeople,
    OsdiPeopleEmbedded,
    OsdiPeopleLinks,
    OsdiPerson,
    OsdiPetition,
    OsdiPetitionLinks,
    OsdiPetitions,
    OsdiPetitionsEmbedded,
    OsdiPetitionsLinks,
    OsdiPostalAddress,
    OsdiPostalAddressIn,
    OsdiRecordSignature,
    OsdiSignature,
    OsdiSignatureAccepted,
    OsdiSignatureLinks,
    OsdiSignatures,
    OsdiSignaturesEmbedded,
    OsdiSignaturesLinks,
    OsdiTarget,
)
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.signatures import directory
from app.signatures import service as signature_service
from app.signatures.models import Signature, SignatureCreate

Addressed = TypeVar("Addressed", OsdiEmailAddressIn, OsdiPostalAddressIn)

BASE_PATH = "/api/osdi/v1"
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Reader:
    """Who reads, and the campaigns they may see (None: every campaign)."""

    user: User
    campaign_ids: list[int] | None


def reader(session: Session, *, user: User) -> Reader:
    return Reader(user=user, campaign_ids=auth_service.accessible_campaign_ids(session, user=user))


@dataclass(frozen=True)
class Paging:
    page: int = 1
    per_page: int = DEFAULT_PAGE_SIZE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


class Urls:
    """Absolute links, from PUBLIC_BASE_URL (never from the request's Host header)."""

    def __init__(self, settings: Settings) -> None:
        self.base = settings.public_url(BASE_PATH)

    def link(self, path: str, title: str | None = None) -> OsdiLink:
        return OsdiLink(href=self.base + path, title=title)

    def petition(self, slug: str) -> OsdiLink:
        return self.link(f"/petitions/{slug}")

    def signatures(self, slug: str) -> OsdiLink:
        return self.link(f"/petitions/{slug}/signatures")

    def signature(self, slug: str, signature_id: int) -> OsdiLink:
        return self.link(f"/petitions/{slug}/signatures/{signature_id}")

    def person(self, person_id: int) -> OsdiLink:
        return self.link(f"/people/{person_id}")

    def page(self, path: str, page: int, per_page: int) -> OsdiLink:
        query = {"page": page} if page != 1 else {}
        if per_page != DEFAULT_PAGE_SIZE:
            query["per_page"] = per_page
        return self.link(f"{path}?{urlencode(query)}" if query else path)


@dataclass(frozen=True)
class PageFields:
    """What an OSDI collection says about its paging, and its self/next/prev links."""

    total_pages: int
    per_page: int
    page: int
    total_records: int
    self: OsdiLink
    next: OsdiLink | None
    prev: OsdiLink | None

    @classmethod
    def of(cls, urls: Urls, path: str, paging: Paging, total: int) -> PageFields:
        pages = ceil(total / paging.per_page)
        page, per_page = paging.page, paging.per_page
        return cls(
            total_pages=pages,
            per_page=per_page,
            page=page,
            total_records=total,
            self=urls.page(path, page, per_page),
            next=urls.page(path, page + 1, per_page) if page < pages else None,
            prev=urls.page(path, min(page - 1, max(pages, 1)), per_page) if page > 1 else None,
        )

    def counts(self) -> dict[str, int]:
        return {
            "total_pages": self.total_pages,
            "per_page": self.per_page,
            "page": self.page,
            "total_records": self.total_records,
        }


def _identifiers(local_id: int | str) -> list[str]:
    return [f"{IDENTIFIER_PREFIX}{local_id}"]


# --- the entry point --------------------------------------------------------------------------


def entry_point(settings: Settings) -> OsdiEntryPoint:
    urls = Urls(settings)
    return OsdiEntryPoint(
        motd="Chorus: petitions, their signatures and the people who signed them (read-only, "
        "plus the record signature helper).",
        max_pagesize=MAX_PAGE_SIZE,
        vendor_name="Chorus",
        product_name="Chorus",
        osdi_version="1.1",
        namespace=IDENTIFIER_PREFIX.rstrip(":"),
        links=OsdiAepLinks(
            self=urls.link("/", "This API entry point"),
            curies=CURIES,
            petitions=urls.link("/petitions", "The collection of petitions in the system"),
            people=urls.link("/people", "The collection of people in the system"),
        ),
    )


# --- petitions --------------------------------------------------------------------------------


def _html(text: str) -> str:
    """The petition's text as its page shows it: paragraphs, HTML-escaped."""
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def _petition(
    session: Session, *, urls: Urls, settings: Settings, petition: Petition, count: int
) -> OsdiPetition:
    assert petition.id is not None
    locale = petition.default_locale
    text = petition.text(locale)
    targets = petition_service.targets(session, petition_id=petition.id)
    return OsdiPetition(
        identifiers=_identifiers(petition.slug),
        created_date=petition.created_at,
        modified_date=petition.updated_at,
        name=petition.slug,
        title=text["title"],
        description=_html(text["body"]),
        summary=text["summary"],
        petition_text=text["body"],
        browser_url=petition_service.page_url(settings, petition),
        total_signatures=count,
        # OSDI has one name per target: "name, role, organisation", as its examples write it.
        target=[
            OsdiTarget(name=", ".join(part for part in t.text(locale).values() if part))
            for t in targets
        ],
        links=OsdiPetitionLinks(
            self=urls.petition(petition.slug),
            signatures=urls.signatures(petition.slug),
            record_signature_helper=urls.signatures(petition.slug),
        ),
    )


def petitions(
    session: Session, *, settings: Settings, reader: Reader, paging: Paging
) -> OsdiPetitions:
    """The petitions (any status) of the campaigns the reader may see, oldest first."""
    urls = Urls(settings)
    found, total = petition_service.page_in_campaigns(
        session, campaign_ids=reader.campaign_ids, offset=paging.offset, limit=paging.per_page
    )
    counts = signature_service.confirmed_counts(
        session, petition_ids=[p.id for p in found if p.id is not None]
    )
    documents = [
        _petition(session, urls=urls, settings=settings, petition=p, count=counts.get(p.id or 0, 0))
        for p in found
    ]
    fields = PageFields.of(urls, "/petitions", paging, total)
    return OsdiPetitions(
        **fields.counts(),
        links=OsdiPetitionsLinks(
            self=fields.self,
            next=fields.next,
            prev=fields.prev,
            curies=CURIES,
            petitions=[d.links.self for d in documents],
        ),
        embedded=OsdiPetitionsEmbedded(petitions=documents),
    )


def _readable(session: Session, *, reader: Reader, slug: str) -> Petition:
    """The petition, if the reader may see its campaign; 404 otherwise."""
    return petition_service.managed(session, user=reader.user, slug=slug)


def petition(session: Session, *, settings: Settings, reader: Reader, slug: str) -> OsdiPetition:
    found = _readable(session, reader=reader, slug=slug)
    assert found.id is not None
    count = signature_service.confirmed_count(session, petition_id=found.id)
    document = _petition(
        session, urls=Urls(settings), settings=settings, petition=found, count=count
    )
    document.links.curies = CURIES
    return document


# --- signatures -------------------------------------------------------------------------------


def _person_ids(session: Session, *, reader: Reader, emails: list[str]) -> dict[str, int]:
    """{address: the person's id} (the id of their first signature the reader may see)."""
    first: dict[str, int] = {}
    for signature in directory.signatures_of(
        session, emails=emails, campaign_ids=reader.campaign_ids
    ):
        assert signature.id is not None
        first.setdefault(signature.email_normalised, signature.id)
    return first


def _signature(urls: Urls, slug: str, signature: Signature, person_id: int | None) -> OsdiSignature:
    assert signature.id is not None
    changes = (signature.created_at, signature.confirmed_at, signature.anonymised_at)
    return OsdiSignature(
        identifiers=_identifiers(signature.id),
        created_date=signature.created_at,
        modified_date=max(moment for moment in changes if moment is not None),
        action_date=signature.created_at,
        links=OsdiSignatureLinks(
            self=urls.signature(slug, signature.id),
            petition=urls.petition(slug),
            person=urls.person(person_id) if person_id is not None else None,
        ),
    )


def _people_of(session: Session, *, reader: Reader, signatures: list[Signature]) -> dict[str, int]:
    # Anonymised signatures have no person (their address is gone).
    emails = [s.email_normalised for s in signatures if s.anonymised_at is None]
    return _person_ids(session, reader=reader, emails=emails)


def signatures(
    session: Session, *, settings: Settings, reader: Reader, slug: str, paging: Paging
) -> OsdiSignatures:
    """A petition's confirmed signatures (those that count), oldest first."""
    found = _readable(session, reader=reader, slug=slug)
    assert found.id is not None
    urls = Urls(settings)
    page = directory.confirmed_page(
        session, petition_id=found.id, offset=paging.offset, limit=paging.per_page
    )
    person_ids = _people_of(session, reader=reader, signatures=page)
    documents = [_signature(urls, slug, s, person_ids.get(s.email_normalised)) for s in page]
    total = directory.count_confirmed(session, petition_id=found.id)
    fields = PageFields.of(urls, f"/petitions/{slug}/signatures", paging, total)
    return OsdiSignatures(
        **fields.counts(),
        links=OsdiSignaturesLinks(
            self=fields.self,
            next=fields.next,
            prev=fields.prev,
            curies=CURIES,
            signatures=[d.links.self for d in documents],
        ),
        embedded=OsdiSignaturesEmbedded(signatures=documents),
    )


def signature(
    session: Session, *, settings: Settings, reader: Reader, slug: str, signature_id: int
) -> OsdiSignature:
    """One confirmed signature of the petition; 404 for any other (pending, withdrawn, ...)."""
    found = _readable(session, reader=reader, slug=slug)
    assert found.id is not None
    one = directory.confirmed_one(session, petition_id=found.id, signature_id=signature_id)
    if one is None:
        raise ProblemError(404, "signature-not-found", "Signature not found")
    person_ids = _people_of(session, reader=reader, signatures=[one])
    document = _signature(Urls(settings), slug, one, person_ids.get(one.email_normalised))
    document.links.curies = CURIES
    return document


# --- people -----------------------------------------------------------------------------------


def _email_status(signatures: list[Signature], reason: SuppressionReason | None) -> EmailStatus:
    if reason == SuppressionReason.bounced:
        return "bouncing"
    if reason == SuppressionReason.unsubscribed:
        return "unsubscribed"
    return "subscribed" if any(s.consent_updates for s in signatures) else "unsubscribed"


def _person(
    urls: Urls, signatures: list[Signature], reason: SuppressionReason | None
) -> OsdiPerson:
    """A person from their signatures the reader may see (oldest first): the newest says who
    they are now."""
    first, latest = signatures[0], signatures[-1]
    assert first.id is not None
    return OsdiPerson(
        identifiers=_identifiers(first.id),
        created_date=first.created_at,
        modified_date=max(s.confirmed_at or s.created_at for s in signatures),
        given_name=latest.name,
        email_addresses=[
            OsdiEmailAddress(
                address=latest.email, primary=True, status=_email_status(signatures, reason)
            )
        ],
        postal_addresses=[
            OsdiPostalAddress(primary=True, postal_code=latest.postcode, country=latest.country)
        ],
        languages_spoken=list(dict.fromkeys(s.locale for s in reversed(signatures))),
        links=OsdiLinks(self=urls.person(first.id)),
    )


def _people(session: Session, *, reader: Reader, urls: Urls, emails: list[str]) -> list[OsdiPerson]:
    grouped: dict[str, list[Signature]] = defaultdict(list)
    for found in directory.signatures_of(session, emails=emails, campaign_ids=reader.campaign_ids):
        grouped[found.email_normalised].append(found)
    reasons = email_service.suppression_reasons(session, emails=emails)
    return [_person(urls, grouped[e], reasons.get(e)) for e in emails if grouped[e]]


def people(session: Session, *, settings: Settings, reader: Reader, paging: Paging) -> OsdiPeople:
    """The people who signed in the campaigns the reader may see, by their first signature."""
    urls = Urls(settings)
    emails = directory.people(
        session, campaign_ids=reader.campaign_ids, offset=paging.offset, limit=paging.per_page
    )
    documents = _people(session, reader=reader, urls=urls, emails=emails)
    total = directory.count_people(session, campaign_ids=reader.campaign_ids)
    fields = PageFields.of(urls, "/people", paging, total)
    return OsdiPeople(
        **fields.counts(),
        links=OsdiPeopleLinks(
            self=fields.self,
            next=fields.next,
            prev=fields.prev,
            curies=CURIES,
            people=[d.links.self for d in documents],
        ),
        embedded=OsdiPeopleEmbedded(people=documents),
    )


def person(
    session: Session, *, settings: Settings, reader: Reader, person_id: int
) -> OsdiPerson | int:
    """The person, or the id to redirect to when `person_id` is another of their signatures
    (what a person's id was before their first signature was withdrawn, say); 404 when the
    reader may see no confirmed signature of theirs with personal data."""
    known = directory.in_campaigns(
        session, signature_id=person_id, campaign_ids=reader.campaign_ids
    )
    held = (
        directory.signatures_of(
            session, emails=[known.email_normalised], campaign_ids=reader.campaign_ids
        )
        if known is not None
        else []
    )
    if not held:
        raise ProblemError(404, "person-not-found", "Person not found")
    canonical = held[0].id
    assert canonical is not None
    if canonical != person_id:
        return canonical
    reason = email_service.suppression_reasons(session, emails=[held[0].email_normalised])
    document = _person(Urls(settings), held, reason.get(held[0].email_normalised))
    document.links.curies = CURIES
    return document


# --- the record signature helper --------------------------------------------------------------


def _primary(items: list[Addressed]) -> tuple[int, Addressed]:
    """The entry marked primary (OSDI allows one), else the first."""
    for index, item in enumerate(items):
        if item.primary:
            return index, item
    return 0, items[0]


def signature_to_record(
    session: Session, *, reader: Reader, slug: str, body: OsdiRecordSignature
) -> SignatureCreate:
    """The signature an OSDI person stands for, checked by the signing API's own rules; the
    petition must be the reader's and take signatures (404, 409), the fields valid (422, each
    named by its OSDI path).

    Chorus keeps one name: given, additional and family names are joined with spaces, in that
    order. `subscribed` as the primary address's status is consent to campaign updates.
    """
    found = _readable(session, reader=reader, slug=slug)
    petition_service.ensure_accepting(found)
    person = body.person
    email_index, email = _primary(person.email_addresses)
    postal_index, postal = (
        _primary(person.postal_addresses) if person.postal_addresses else (None, None)
    )
    names = (person.given_name, person.additional_name, person.family_name)
    where = {
        "name": "person.given_name",
        "email": f"person.email_addresses.{email_index}.address",
        "country": "person.postal_addresses"
        if postal_index is None
        else f"person.postal_addresses.{postal_index}.country",
        "postcode": f"person.postal_addresses.{postal_index}.postal_code",
    }
    spoken = [language.strip().lower().split("-")[0] for language in person.languages_spoken]
    try:
        return SignatureCreate(
            name=" ".join(part.strip() for part in names if part and part.strip()),
            email=email.address,
            country=(postal.country if postal is not None else None) or "",
            postcode=postal.postal_code if postal is not None else None,
            consent_updates=(email.status or "").strip().lower() == "subscribed",
            locale=next((language for language in spoken if language in found.locales), None),
        )
    except ValidationError as exc:
        errors = [
            FieldError(field=where.get(e.field, "person"), type=e.type, message=e.message)
            for e in field_errors_from_pydantic(exc.errors())
        ]
        raise ProblemError(
            422,
            "validation",
            "Your request has invalid fields",
            "; ".join(f"{e.field}: {e.message}" for e in errors),
            errors=errors,
        ) from None


def accepted(settings: Settings, *, slug: str) -> OsdiSignatureAccepted:
    urls = Urls(settings)
    return OsdiSignatureAccepted(
        links=OsdiAcceptedLinks(
            curies=CURIES, petition=urls.petition(slug), signatures=urls.signatures(slug)
        )
    )
