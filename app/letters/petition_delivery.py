"""Delivering a petition: the signatory annex, its manifest and links, one letter per official."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import ProblemError
from app.core.i18n import country_name
from app.core.spreadsheet import UTF8_BOM, as_text, iso_utc, neutralise
from app.core.tokens import make_token, read_link
from app.letters import delivery_log, scheduling
from app.letters.models import (
    CountrySummary,
    DeliveryCreate,
    LetterDelivery,
    PetitionDelivery,
    PetitionDeliveryAdmin,
)
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.signatures import rows as signature_rows
from app.signatures import service as signature_service
from app.webhooks import payloads as webhook_payloads
from app.webhooks import service as webhook_service

ANNEX_COLUMNS = {"postcode": "postcode", "confirmed_at": "confirmed_at"}
ANNEX_TYPE = "text/csv; charset=utf-8"


def annex_filename(petition: Petition, number: int) -> str:
    """The annex's file name, one per delivery of the petition."""
    return f"{petition.slug}-signatures-{number}.csv"


def _annex_rows(
    session: Session, *, petition_id: int, fields: Sequence[str]
) -> Iterator[list[str]]:
    yield ["name", "country", *fields]
    for name, country, postcode, confirmed_at in signature_rows.annex(
        session, petition_id=petition_id
    ):
        extra = {
            "postcode": neutralise(as_text(postcode or "")),
            "confirmed_at": iso_utc(confirmed_at) if confirmed_at else "",
        }
        yield [neutralise(name), country, *(extra[f] for f in fields)]


def _build_annex(
    session: Session, *, petition_id: int, fields: list[str]
) -> tuple[bytes, int, int, str]:
    """The CSV annex, gzip-compressed as it is built: (gzip, rows, bytes, sha256 of the CSV).

    The CSV starts with a UTF-8 byte order mark, which the SHA-256 covers: without it Excel
    reads the file in the local code page, and Korean and Ukrainian names turn to noise.
    """
    digest = hashlib.sha256()
    compressed = io.BytesIO()
    size = rows = 0
    with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0) as archive:
        text = io.StringIO()
        text.write(UTF8_BOM)
        writer = csv.writer(text)
        for i, row in enumerate(_annex_rows(session, petition_id=petition_id, fields=fields)):
            writer.writerow(row)
            rows += i > 0
            if text.tell() > 64_000:
                chunk = text.getvalue().encode()
                digest.update(chunk)
                archive.write(chunk)
                size += len(chunk)
                text.seek(0)
                text.truncate()
        chunk = text.getvalue().encode()
        digest.update(chunk)
        archive.write(chunk)
        size += len(chunk)
    return compressed.getvalue(), rows, size, digest.hexdigest()


def _latest_delivery(session: Session, *, petition_id: int) -> PetitionDelivery | None:
    return session.exec(
        select(PetitionDelivery)
        .where(PetitionDelivery.petition_id == petition_id)
        .order_by(col(PetitionDelivery.number).desc())
    ).first()


def deliver(
    session: Session,
    *,
    actor: User,
    petition: Petition,
    data: DeliveryCreate,
    settings: Settings,
) -> tuple[PetitionDelivery, bool]:
    """Deliver the petition to each of its targets. -> (delivery, created)

    Without `new`, a petition delivered before is not delivered again: the existing delivery
    is returned and nothing is sent (also when two calls race: the number is unique).
    """
    assert petition.id is not None
    latest = _latest_delivery(session, petition_id=petition.id)
    if latest is not None and not data.new:
        return latest, False
    targets = petition_service.letter_targets(session, petition=petition)
    if not targets:
        raise ProblemError(
            409,
            "no-targets",
            "The petition has no official to deliver it to",
            "Add targets with an e-mail or a postal address first.",
        )
    fields: list[str] = [f for f in ANNEX_COLUMNS if f in data.annex_fields]
    annex, rows, size, sha256 = _build_annex(session, petition_id=petition.id, fields=fields)
    countries = signature_service.confirmed_by_country(session, petition_id=petition.id)
    delivery = PetitionDelivery(
        petition_id=petition.id,
        number=(latest.number + 1) if latest else 1,
        created_by=actor.id,
        confirmed_count=sum(c.count for c in countries),
        countries=[{"country": c.country, "count": c.count} for c in countries],
        annex_fields=["name", "country", *fields],
        annex_rows=rows,
        annex_bytes=size,
        annex_sha256=sha256,
        annex_gzip=annex,
    )
    try:
        with session.begin_nested():
            session.add(delivery)
            session.flush()
    except IntegrityError:  # a concurrent call delivered it first
        existing = _latest_delivery(session, petition_id=petition.id)
        assert existing is not None
        return existing, False
    for target in targets:
        letter = LetterDelivery(
            petition_id=petition.id,
            target_id=target.id or 0,
            petition_delivery_id=delivery.id,
            channel=target.delivery_channel,
            scheduled_on=utcnow().date(),
        )
        session.add(letter)
        session.flush()
        scheduling.schedule(
            session, delivery=letter, target=target, settings=settings, capped=False
        )
    audit_service.record(
        session,
        actor=actor,
        action="petition.deliver",
        subject=f"petition:{petition.slug}",
        campaign_id=petition.campaign_id,
        details={
            "number": delivery.number,
            "targets": len(targets),
            "rows": rows,
            "sha256": sha256,
        },
    )
    webhook_service.emit(
        session,
        campaign_id=petition.campaign_id,
        event="petition.delivered",
        subject=f"petition:{petition.id}",
        key=f"delivery:{delivery.number}",
        data=webhook_payloads.petition_delivered(
            petition, delivery, target_keys=[target.key for target in targets]
        ),
    )
    return delivery, True


ANNEX_PURPOSE = "petition-annex"
ANNEX_LINK_DAYS = 365


def annex_attached(settings: Settings, delivery: PetitionDelivery) -> bool:
    """Whether the signatory list travels with the e-mail, or as a link (ANNEX_ATTACH_MAX_BYTES)."""
    return len(delivery.annex_gzip) <= settings.ANNEX_ATTACH_MAX_BYTES


def annex_url(settings: Settings, delivery: PetitionDelivery) -> str:
    """Where a delivery's recipient downloads a list too big to attach: a signed link, valid
    for ANNEX_LINK_DAYS from the delivery (the same link in every letter of the delivery)."""
    assert delivery.id is not None
    expires_at = int(delivery.created_at.timestamp()) + ANNEX_LINK_DAYS * 86400
    token = make_token(settings, purpose=ANNEX_PURPOSE, subject=delivery.id, expires_at=expires_at)
    return settings.public_url(f"/api/v1/annexes/{token}")


def linked_annex(
    session: Session, *, token: str, settings: Settings
) -> tuple[PetitionDelivery, Petition]:
    """The delivery an annex link is for."""
    claims = read_link(
        settings,
        token,
        purpose=ANNEX_PURPOSE,
        invalid_status=404,
        renew="Ask the campaign for the list of signatories again.",
    )
    delivery = session.get(PetitionDelivery, claims.subject)
    petition = session.get(Petition, delivery.petition_id) if delivery else None
    if delivery is None or petition is None:
        raise ProblemError(404, "token-invalid", "This link is not valid")
    return delivery, petition


def delivery_vars(
    delivery: PetitionDelivery, petition: Petition, language: str, settings: Settings
) -> dict[str, Any]:
    """`delivery` in a delivery letter's template: counts, countries, the annex."""
    return {
        "number": delivery.number,
        "confirmed_count": delivery.confirmed_count,
        "countries": [
            {
                "country": c["country"],
                "name": country_name(c["country"], language),
                "count": c["count"],
            }
            for c in delivery.countries
        ],
        "annex_filename": annex_filename(petition, delivery.number),
        "annex_sha256": delivery.annex_sha256,
        "annex_rows": delivery.annex_rows,
        "annex_url": "" if annex_attached(settings, delivery) else annex_url(settings, delivery),
    }


def upcoming_delivery_vars(
    session: Session, *, petition: Petition, language: str
) -> dict[str, Any]:
    """`delivery` as a delivery made now would have it, for previews: the same count and
    per-country summary `deliver` takes, the next number, the rows the annex would have. Only
    the annex's SHA-256 is not known before the annex is written."""
    assert petition.id is not None
    latest = _latest_delivery(session, petition_id=petition.id)
    number = (latest.number + 1) if latest else 1
    countries = signature_service.confirmed_by_country(session, petition_id=petition.id)
    rows = signature_rows.annex_count(session, petition_id=petition.id)
    return {
        "number": number,
        "confirmed_count": sum(c.count for c in countries),
        "countries": [
            {"country": c.country, "name": country_name(c.country, language), "count": c.count}
            for c in countries
        ],
        "annex_filename": annex_filename(petition, number),
        "annex_sha256": "(the SHA-256 of the list is computed when the petition is delivered)",
        "annex_rows": rows,
        "annex_url": "",
    }


def manifest(delivery: PetitionDelivery, petition: Petition, settings: Settings) -> bytes:
    """What a recipient checks the annex against: its SHA-256, size and row count."""
    document = {
        "petition": petition.slug,
        "title": petition.text(petition.default_locale)["title"],
        "url": petition_service.page_url(settings, petition),
        "delivery": delivery.number,
        "delivered_at": iso_utc(delivery.created_at),
        "confirmed_count": delivery.confirmed_count,
        "countries": delivery.countries,
        "annex": {
            "filename": annex_filename(petition, delivery.number),
            "media_type": ANNEX_TYPE,
            "columns": delivery.annex_fields,
            "rows": delivery.annex_rows,
            "bytes": delivery.annex_bytes,
            "sha256": delivery.annex_sha256,
        },
    }
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode()


def annex(delivery: PetitionDelivery) -> bytes:
    """The annex's CSV."""
    return gzip.decompress(annex_gzip(delivery))


def download_annex(
    session: Session,
    *,
    actor: User | None,
    petition: Petition,
    delivery: PetitionDelivery,
    via: str,
    compressed: bool = False,
) -> bytes:
    """The annex (its CSV, or `compressed` as stored) for a download, with an audit entry: it
    lists the signatories, as an export does. `actor` None: the recipient's signed link (`via`
    says how: "api", "console" or "link"). 410 once the retention period removed it (and then
    nothing is recorded, as nothing left)."""
    content = annex_gzip(delivery) if compressed else annex(delivery)
    audit_service.record(
        session,
        actor=actor,
        action="delivery.annex_download",
        subject=f"petition:{petition.slug}",
        campaign_id=petition.campaign_id,
        details={"number": delivery.number, "via": via, "sha256": delivery.annex_sha256},
    )
    return content


def annex_gzip(delivery: PetitionDelivery) -> bytes:
    """The annex's CSV, gzip-compressed as stored; 410 once the retention period removed it."""
    if not delivery.annex_gzip:
        raise ProblemError(
            410,
            "annex-removed",
            "The annex was removed",
            "The petition's personal data was removed after its retention period; the "
            "manifest still gives the annex's SHA-256.",
        )
    return delivery.annex_gzip


def get_delivery(session: Session, *, petition: Petition, number: int) -> PetitionDelivery:
    """A petition's delivery by its number; 404 if there is none."""
    found = session.exec(
        select(PetitionDelivery).where(
            PetitionDelivery.petition_id == petition.id, PetitionDelivery.number == number
        )
    ).first()
    if found is None:
        raise ProblemError(404, "delivery-not-found", "No such delivery of this petition")
    return found


def to_admin(session: Session, delivery: PetitionDelivery) -> PetitionDeliveryAdmin:
    """A delivery as the admin API shows it, with each official's letter from the log."""
    rows = session.execute(
        delivery_log.log_query()
        .where(col(LetterDelivery.petition_delivery_id) == delivery.id)
        .order_by(col(LetterDelivery.id))
    ).all()
    return PetitionDeliveryAdmin(
        number=delivery.number,
        created_at=delivery.created_at,
        confirmed_count=delivery.confirmed_count,
        countries=[CountrySummary(**c) for c in delivery.countries],
        annex_fields=delivery.annex_fields,
        annex_rows=delivery.annex_rows,
        annex_bytes=delivery.annex_bytes,
        annex_sha256=delivery.annex_sha256,
        letters=[delivery_log.entry(row) for row in rows],
    )


def list_deliveries(session: Session, *, petition_id: int) -> list[PetitionDelivery]:
    """The petition's deliveries, oldest first."""
    return list(
        session.exec(
            select(PetitionDelivery)
            .where(PetitionDelivery.petition_id == petition_id)
            .order_by(col(PetitionDelivery.number))
        )
    )
