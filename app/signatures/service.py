"""Signing, confirming and counting signatures."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, text, update
from sqlmodel import Session, col, select

from app.abuse import service as abuse_service
from app.abuse.service import SigningSource
from app.campaigns import service as campaign_service
from app.core import metrics
from app.core.config import Settings
from app.core.db import dialect_insert, utcnow
from app.core.errors import ProblemError
from app.core.tokens import make_token, read_link
from app.email import service as email_service
from app.petitions.models import CountryCount, Petition
from app.signatures.models import (
    Signature,
    SignatureCreate,
    SignatureHourlyTally,
    SignatureStatus,
    SignatureTally,
)
from app.signatures.validation import normalise_email

log = logging.getLogger(__name__)

CONFIRM_PURPOSE = "confirm-signature"


@dataclass(frozen=True)
class SignRequest:
    petition: Petition
    data: SignatureCreate
    locale: str
    source: SigningSource = field(default_factory=SigningSource)


def sign(
    session: Session,
    *,
    petition: Petition,
    data: SignatureCreate,
    locale: str,
    settings: Settings,
    source: SigningSource | None = None,
) -> None:
    """Record one pending signature and queue its confirmation e-mail (see sign_many)."""
    sign_many(
        session,
        [SignRequest(petition, data, locale, source or SigningSource())],
        settings=settings,
    )


def sign_many(session: Session, requests: list[SignRequest], *, settings: Settings) -> None:
    """Record pending signatures and queue their confirmation e-mails, in a few statements.

    The abuse controls may hold a signature instead (status suspect, no e-mail) when it comes
    from a honeypot, a blocked source or a source over its rate limits; the answer is the same.

    The caller must have checked that each petition takes signatures. A second attempt with the
    same (normalised) e-mail creates nothing and queues either another confirmation e-mail (if
    the first is still unconfirmed, up to MAX_CONFIRMATION_SENDS in all) or an "already signed"
    e-mail, so the response never reveals whether someone has signed. The unique constraint
    makes this hold under concurrent requests (and within one batch) too.
    """
    checks = []
    for request in requests:
        email_normalised = normalise_email(request.data.email)
        ip = request.source.ip
        checks.append(
            abuse_service.HoldCheck(
                source=request.source,
                ip_digest=abuse_service.ip_hash(settings, ip) if ip else None,
                domain=email_normalised.rpartition("@")[2],
                email_normalised=email_normalised,
            )
        )
    holds = abuse_service.hold_reasons(session, settings=settings, checks=checks)
    now = utcnow()
    rows = [
        {
            "petition_id": request.petition.id,
            "name": request.data.name,
            "email": request.data.email,
            "email_normalised": check.email_normalised,
            "country": request.data.country,
            "postcode": request.data.postcode,
            "consent_updates": request.data.consent_updates,
            "locale": request.locale,
            "status": SignatureStatus.suspect if held else SignatureStatus.pending,
            "held_reason": held,
            "ip_hash": check.ip_digest,
            "email_domain": check.domain,
            "created_at": now,
            "confirmation_sends": 1,
        }
        for request, check, held in zip(requests, checks, holds, strict=True)
    ]
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:  # signatures and their confirmation e-mails in one round trip
        inserted = session.execute(PG_SIGN_MANY, _columns(rows, now)).all()
    else:
        # Core insert on the table, not the ORM-enabled one: this is the hot path of a surge.
        # Several rows go as one multi-row INSERT (SQLAlchemy's "insertmanyvalues").
        table = Signature.__table__  # type: ignore[attr-defined]
        inserted = session.execute(
            dialect_insert(session)(table)
            .on_conflict_do_nothing(index_elements=["petition_id", "email_normalised"])
            .returning(table.c.id, table.c.petition_id, table.c.email_normalised),
            rows,
        ).all()
    new_ids = {(petition_id, email): id_ for id_, petition_id, email in inserted}
    confirmations = []
    repeated = held_count = 0
    for request, check, held in zip(requests, checks, holds, strict=True):
        new_id = new_ids.pop((request.petition.id, check.email_normalised), None)
        if new_id is None:  # signed before (or twice in this batch)
            repeated += 1
            _signed_again(session, request, check.email_normalised, settings=settings)
        elif held:
            held_count += 1
            log.info("signature %s held: %s", new_id, held)
        elif not postgres:  # (on PostgreSQL the insert queued it already)
            confirmations.append(
                {
                    "kind": "signature_confirmation",
                    "payload": {"signature_id": new_id},
                    "dedup_key": f"signature-confirmation:{new_id}:1",
                    "recipient": request.data.email,
                }
            )
    email_service.enqueue_many(session, confirmations)
    metrics.after_commit(session, metrics.SIGNATURES_HELD, held_count)
    metrics.after_commit(session, metrics.SIGNATURES_REPEATED, repeated)
    metrics.after_commit(
        session, metrics.SIGNATURES_ACCEPTED, len(requests) - repeated - held_count
    )


# PostgreSQL: the batch's signatures, from one array per column, and the confirmation e-mail of
# each new pending one, in one statement (a data-modifying CTE): one round trip per batch, and
# no SQL text growing with the batch. The outbox row is the same as enqueue_many would write.
PG_SIGN_MANY = text(
    """
    WITH new AS (
        INSERT INTO signature (petition_id, name, email, email_normalised, country, postcode,
                               consent_updates, locale, status, held_reason, ip_hash,
                               email_domain, created_at, confirmation_sends)
        SELECT r.*, :now, 1
        FROM unnest(CAST(:petition_id AS integer[]), CAST(:name AS text[]),
                    CAST(:email AS text[]), CAST(:email_normalised AS text[]),
                    CAST(:country AS text[]), CAST(:postcode AS text[]),
                    CAST(:consent_updates AS boolean[]), CAST(:locale AS text[]),
                    CAST(:status AS text[]), CAST(:held_reason AS text[]),
                    CAST(:ip_hash AS text[]), CAST(:email_domain AS text[])) AS r
        ON CONFLICT (petition_id, email_normalised) DO NOTHING
        RETURNING id, petition_id, email_normalised, email, status
    ), queued AS (
        INSERT INTO outbox_message (kind, payload, dedup_key, recipient, status, attempts,
                                    next_attempt_at, created_at)
        SELECT 'signature_confirmation', json_build_object('signature_id', id),
               'signature-confirmation:' || id || ':' || '1', email, 'pending', 0, :now, :now
        FROM new WHERE status = 'pending'
        ON CONFLICT DO NOTHING
    )
    SELECT id, petition_id, email_normalised FROM new
    """
)
PG_COLUMNS = (
    "petition_id",
    "name",
    "email",
    "email_normalised",
    "country",
    "postcode",
    "consent_updates",
    "locale",
    "status",
    "held_reason",
    "ip_hash",
    "email_domain",
)


def _columns(rows: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    columns: dict[str, Any] = {name: [row[name] for row in rows] for name in PG_COLUMNS}
    columns["status"] = [str(status) for status in columns["status"]]
    columns["now"] = now
    return columns


def _signed_again(
    session: Session, request: SignRequest, email_normalised: str, *, settings: Settings
) -> None:
    existing = session.execute(
        select(Signature.id, Signature.status, Signature.email).where(
            Signature.petition_id == request.petition.id,
            Signature.email_normalised == email_normalised,
        )
    ).one()
    if existing.status in (SignatureStatus.suspect, SignatureStatus.invalidated):
        return  # held or removed: no e-mail, and the same answer as always
    if existing.status == SignatureStatus.pending:
        # Re-send the confirmation, a bounded number of times per signature.
        sends = session.execute(
            update(Signature)
            .where(
                col(Signature.id) == existing.id,
                col(Signature.confirmation_sends) < settings.MAX_CONFIRMATION_SENDS,
            )
            .values(confirmation_sends=Signature.confirmation_sends + 1)
            .returning(col(Signature.confirmation_sends))
        ).scalar_one_or_none()
        if sends is not None:
            email_service.enqueue(
                session,
                kind="signature_confirmation",
                payload={"signature_id": existing.id},
                dedup_key=f"signature-confirmation:{existing.id}:{sends}",
                recipient=existing.email,
            )
        return
    # Already confirmed: tell the signer, at most once a day, so the form cannot be used to
    # flood someone's inbox.
    day = utcnow().strftime("%Y-%m-%d")
    email_service.enqueue(
        session,
        kind="signature_already_signed",
        payload={"signature_id": existing.id},
        dedup_key=f"signature-already-signed:{existing.id}:{day}",
        recipient=existing.email,
    )


def confirmation_token(settings: Settings, *, signature_id: int) -> str:
    return make_token(
        settings,
        purpose=CONFIRM_PURPOSE,
        subject=signature_id,
        ttl_seconds=settings.CONFIRMATION_TOKEN_TTL_HOURS * 3600,
    )


@dataclass(frozen=True)
class Confirmation:
    petition: Petition
    newly_confirmed: bool
    signature_count: int


def confirm(session: Session, *, token: str, settings: Settings) -> Confirmation:
    """Confirm the signature a token was issued for; confirming twice changes nothing.

    Raises a problem: 400 for a malformed or forged token, 410 for an expired one. A signature
    accepted before its petition closed can still be confirmed afterwards.
    """
    claims = read_link(
        settings,
        token,
        purpose=CONFIRM_PURPOSE,
        link="confirmation link",
        renew="Sign the petition again with the same e-mail address to get a new link.",
    )
    signature = session.get(Signature, claims.subject)
    if signature is None:
        raise ProblemError(400, "token-invalid", "This confirmation link is not valid")
    petition = session.get(Petition, signature.petition_id)
    assert petition is not None and petition.id is not None

    if signature.status in (SignatureStatus.suspect, SignatureStatus.invalidated):
        raise ProblemError(400, "token-invalid", "This confirmation link is not valid")
    if signature.status == SignatureStatus.withdrawn:
        raise ProblemError(
            409,
            "signature-withdrawn",
            "This signature was withdrawn",
            "It was withdrawn with the 'manage my signature' link and no longer counts.",
        )
    newly_confirmed = False
    if signature.status == SignatureStatus.pending:
        # Accepted while the petition was open, so it counts even if the petition has closed
        # since: nothing already accepted is lost. The WHERE on status makes concurrent
        # confirmations of one token count once.
        confirmed_at = utcnow()
        result = session.execute(
            update(Signature)
            .where(
                col(Signature.id) == signature.id, col(Signature.status) == SignatureStatus.pending
            )
            .values(status=SignatureStatus.confirmed, confirmed_at=confirmed_at)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            newly_confirmed = True
            metrics.after_commit(session, metrics.CONFIRMATIONS)
            add_to_tallies(
                session, signature=signature, confirmed_at=confirmed_at, settings=settings, delta=1
            )
    count = confirmed_count(session, petition_id=petition.id)
    if newly_confirmed:
        # Queues the organisers' e-mail when this confirmation reached 25/50/75/100 % of the goal.
        campaign_service.check_milestones(session, petition=petition, count=count)
    return Confirmation(petition=petition, newly_confirmed=newly_confirmed, signature_count=count)


def add_to_tallies(
    session: Session,
    *,
    signature: Signature,
    confirmed_at: datetime,
    settings: Settings,
    delta: int,
) -> None:
    """Count a confirmed signature in (delta=1) or out of (delta=-1) the country and hourly
    tallies, on the shard its id picks. Callers change the signature's status in the same
    transaction, guarded so that each signature is counted in or out once."""
    assert signature.id is not None
    shard = signature.id % settings.TALLY_SHARDS
    insert = dialect_insert(session)
    by_country = insert(SignatureTally).values(
        petition_id=signature.petition_id, country=signature.country, shard=shard, count=delta
    )
    session.execute(
        by_country.on_conflict_do_update(
            index_elements=["petition_id", "country", "shard"],
            set_={"count": SignatureTally.count + by_country.excluded.count},
        )
    )
    hour = confirmed_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    by_hour = insert(SignatureHourlyTally).values(
        petition_id=signature.petition_id, hour=hour, shard=shard, count=delta
    )
    session.execute(
        by_hour.on_conflict_do_update(
            index_elements=["petition_id", "hour", "shard"],
            set_={"count": SignatureHourlyTally.count + by_hour.excluded.count},
        )
    )


def confirmed_count(session: Session, *, petition_id: int) -> int:
    """Confirmed signatures of a petition, from the tallies (a few rows, never a scan)."""
    total = session.execute(
        select(func.coalesce(func.sum(SignatureTally.count), 0)).where(
            SignatureTally.petition_id == petition_id
        )
    ).scalar_one()
    return int(total)


def confirmed_counts(session: Session, *, petition_ids: list[int]) -> dict[int, int]:
    """Confirmed signatures of several petitions at once."""
    if not petition_ids:
        return {}
    rows = session.execute(
        select(col(SignatureTally.petition_id), func.sum(SignatureTally.count))
        .where(col(SignatureTally.petition_id).in_(petition_ids))
        .group_by(col(SignatureTally.petition_id))
    )
    return {petition_id: int(total) for petition_id, total in rows}


def confirmed_by_country(session: Session, *, petition_id: int) -> list[CountryCount]:
    """Confirmed signatures per country, largest first."""
    total = func.sum(SignatureTally.count)
    rows = session.execute(
        select(SignatureTally.country, total)
        .where(SignatureTally.petition_id == petition_id)
        .group_by(SignatureTally.country)
        .having(total > 0)
        .order_by(total.desc(), SignatureTally.country)
    )
    return [CountryCount(country=country, count=int(count)) for country, count in rows]


def find_in_campaign(session: Session, *, campaign_id: int, email: str) -> int | None:
    """The id of a signature with this (normalised) e-mail on any petition of the campaign."""
    return session.execute(
        select(Signature.id)
        .join(Petition, col(Petition.id) == col(Signature.petition_id))
        .where(
            Petition.campaign_id == campaign_id,
            Signature.email_normalised == normalise_email(email),
        )
        .order_by(col(Signature.id))
        .limit(1)
    ).scalar_one_or_none()
