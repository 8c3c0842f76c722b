"""Supporters' data rights: managing, withdrawing and exporting their own signature.

Every e-mail to a signer carries a "manage my signature" link (`manage_url`). Its token, like
the confirmation token, is HMAC-signed for one purpose and stored nowhere; whoever holds it can
see what Chorus holds about that one signature, withdraw it, stop updates, and download the data.

Retention: `anonymise_expired` removes the personal data of signatures of petitions that closed
more than DATA_RETENTION_DAYS ago (`chorus anonymise`), keeping the rows so that counts,
per-country and hourly totals stay right, and that of donors whose gift ended that long ago
(app/donations/donors.py), keeping the amounts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import Engine, String, cast, func, literal, update
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.core.config import Settings
from app.core.db import session_scope, utcnow
from app.core.errors import ProblemError
from app.core.tokens import make_token, read_link
from app.donations import donors
from app.donations.models import DonationData
from app.email import outbox
from app.email.models import Suppression
from app.letters import service as letter_service
from app.petitions.models import Petition, PetitionStatus
from app.signatures import service as signature_service
from app.signatures.models import Signature, SignatureStatus
from app.webhooks import payloads as webhook_payloads
from app.webhooks import service as webhook_service

log = logging.getLogger(__name__)

MANAGE_PURPOSE = "manage-signature"
# A manage link must keep working as long as Chorus keeps the signature.
MANAGE_TTL_SECONDS = 3 * 365 * 24 * 3600

# Petitions in these states no longer take signatures; their signers' data has a shelf life.
RETAINED_UNTIL_EXPIRY = (PetitionStatus.closed, PetitionStatus.archived)


def manage_token(settings: Settings, *, signature_id: int) -> str:
    return make_token(
        settings, purpose=MANAGE_PURPOSE, subject=signature_id, ttl_seconds=MANAGE_TTL_SECONDS
    )


def manage_url(settings: Settings, *, signature_id: int, locale: str) -> str:
    """The "manage my signature" link that every e-mail to a signer carries."""
    token = manage_token(settings, signature_id=signature_id)
    return settings.public_url(f"/signatures/manage/{token}?lang={locale}")


# --- reading a manage link --------------------------------------------------------------------


@dataclass(frozen=True)
class Managed:
    """The signature a manage link is for, and its petition."""

    signature: Signature
    petition: Petition


def load(session: Session, *, token: str, settings: Settings) -> Managed:
    """The signature behind a manage token.

    Raises a problem: 400 for a malformed, forged or other-purpose token, 410 for an expired
    one, 404 when the signature no longer exists (its petition was deleted).
    """
    claims = read_link(
        settings,
        token,
        purpose=MANAGE_PURPOSE,
        renew="Links to manage a signature work for three years. If the petition is still "
        "open, sign it again with the same e-mail address: the e-mail you get carries "
        "a new link.",
    )
    signature = session.get(Signature, claims.subject)
    petition = session.get(Petition, signature.petition_id) if signature is not None else None
    if signature is None or petition is None:
        raise ProblemError(
            404,
            "signature-not-found",
            "Chorus holds no signature for this link",
            "It was deleted together with its petition.",
        )
    return Managed(signature=signature, petition=petition)


def _refuse_anonymised(signature: Signature) -> None:
    if signature.anonymised_at is not None:
        raise ProblemError(
            409,
            "signature-anonymised",
            "The personal data of this signature has already been removed",
            "Only its country and dates are kept, so that the closed petition's count stays "
            "right; nothing about it can be changed any more.",
        )


# --- withdrawing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Withdrawal:
    petition: Petition
    newly_withdrawn: bool
    signature_count: int


def withdraw(session: Session, *, token: str, settings: Settings) -> Withdrawal:
    """Withdraw the signature a manage token is for; withdrawing twice changes nothing.

    A pending signature just becomes withdrawn (it was never counted). A confirmed one is
    counted out of the tallies in the same transaction; the UPDATE ... WHERE status guards make
    concurrent withdrawals (and a confirmation racing a withdrawal) count out exactly once.
    The row stays, so the address cannot sign this petition again (signing again gets the
    "already signed" e-mail, whose manage link shows the signature as withdrawn).
    """
    managed = load(session, token=token, settings=settings)
    signature, petition = managed.signature, managed.petition
    assert signature.id is not None and petition.id is not None
    _refuse_anonymised(signature)
    now = utcnow()

    def move(from_status: SignatureStatus) -> tuple[int, datetime | None] | None:
        row = session.execute(
            update(Signature)
            .where(col(Signature.id) == signature.id, col(Signature.status) == from_status)
            .values(status=SignatureStatus.withdrawn, withdrawn_at=now)
            .returning(col(Signature.id), col(Signature.confirmed_at))
            .execution_options(synchronize_session=False)
        ).first()
        return (row[0], row[1]) if row is not None else None

    # Pending first: the only way a signature's status moves on its own is pending ->
    # confirmed, so a confirmation that wins the race is seen by the second statement.
    newly_withdrawn = move(SignatureStatus.pending) is not None
    if not newly_withdrawn:
        counted_out = move(SignatureStatus.confirmed)
        if counted_out is not None:
            confirmed_at = counted_out[1]
            assert confirmed_at is not None  # set by every confirmation
            signature_service.add_to_tallies(
                session, signature=signature, confirmed_at=confirmed_at, settings=settings, delta=-1
            )
            newly_withdrawn = True
            webhook_service.emit(  # (a pending one was never announced)
                session,
                campaign_id=petition.campaign_id,
                event="signature.withdrawn",
                subject=f"signature:{signature.id}",
                data=webhook_payloads.signature(
                    signature,
                    petition,
                    count=signature_service.confirmed_count(session, petition_id=petition.id),
                ),
            )
    if newly_withdrawn:
        session.refresh(signature)
    return Withdrawal(
        petition=petition,
        newly_withdrawn=newly_withdrawn,
        signature_count=signature_service.confirmed_count(session, petition_id=petition.id),
    )


@dataclass(frozen=True)
class ConsentWithdrawal:
    petition: Petition
    changed: bool  # False when consent had already been withdrawn (or never given)


def withdraw_consent(session: Session, *, token: str, settings: Settings) -> ConsentWithdrawal:
    """Stop campaign updates to this signature (consent_updates=false), whatever its status."""
    managed = load(session, token=token, settings=settings)
    signature = managed.signature
    _refuse_anonymised(signature)
    changed = (
        session.execute(
            update(Signature)
            .where(col(Signature.id) == signature.id, col(Signature.consent_updates).is_(True))
            .values(consent_updates=False)
            .returning(col(Signature.id))
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        is not None
    )
    if changed:
        session.refresh(signature)
    return ConsentWithdrawal(petition=managed.petition, changed=changed)


# --- downloading ------------------------------------------------------------------------------


class SignatureData(BaseModel):
    id: int
    name: str
    email: str
    email_normalised: str
    country: str
    postcode: str | None
    consent_updates: bool
    locale: str
    status: SignatureStatus
    created_at: datetime
    confirmed_at: datetime | None
    confirmation_emails: int
    withdrawn_at: datetime | None
    anonymised_at: datetime | None


class PetitionRef(BaseModel):
    slug: str
    title: str


class MessageData(BaseModel):
    kind: str
    status: str
    created_at: datetime
    sent_at: datetime | None


class SuppressionData(BaseModel):
    reason: str
    created_at: datetime


class LetterData(BaseModel):
    """A letter the same address wrote to the petition's officials."""

    id: int
    status: str
    created_at: datetime
    confirmed_at: datetime | None
    name: str
    city: str
    country: str
    message: str
    targets: list[str]


class SignatureExport(BaseModel):
    """Everything Chorus holds about one signature (links and tokens are never included)."""

    format: Literal["chorus-signature-export/1"] = "chorus-signature-export/1"
    exported_at: datetime
    signature: SignatureData
    petition: PetitionRef
    # E-mails queued for this address: what they were, and whether and when they were sent.
    messages: list[MessageData]
    # Set when the address is on the list that no campaign update may reach (unsubscribed or
    # bounced).
    suppression: SuppressionData | None = None
    # Letters from this address to the petition's officials.
    letters: list[LetterData] = []
    # Gifts made with this address (any campaign), or linked to this signature.
    donations: list[DonationData] = []


def export(session: Session, *, token: str, settings: Settings) -> SignatureExport:
    """The signature, its petition, and the e-mails Chorus queued for that address."""
    managed = load(session, token=token, settings=settings)
    return export_of(session, signature=managed.signature, petition=managed.petition)


def export_of(session: Session, *, signature: Signature, petition: Petition) -> SignatureExport:
    assert signature.id is not None
    messages: list[MessageData] = []
    suppression: SuppressionData | None = None
    letters: list[LetterData] = []
    donations: list[DonationData] = []
    if signature.email:  # anonymised signatures have no address, and their messages none either
        messages = [
            MessageData(
                kind=sent.kind, status=sent.status, created_at=sent.created_at, sent_at=sent.sent_at
            )
            for sent in outbox.messages_to(session, recipient=signature.email, limit=1000)
        ]
        letters = [
            LetterData(
                id=letter.id or 0,
                status=str(letter.status),
                created_at=letter.created_at,
                confirmed_at=letter.confirmed_at,
                name=letter.name,
                city=letter.city,
                country=letter.country,
                message=letter.message,
                targets=names,
            )
            for letter, names in letter_service.letters_of(
                session, petition_id=petition.id or 0, email_normalised=signature.email_normalised
            )
        ]
        donations = donors.donations_of(session, email=signature.email, signature_id=signature.id)
        suppressed = session.get(Suppression, signature.email_normalised)
        if suppressed is not None:
            suppression = SuppressionData(
                reason=str(suppressed.reason), created_at=suppressed.created_at
            )
    return SignatureExport(
        exported_at=utcnow(),
        signature=SignatureData(
            id=signature.id,
            name=signature.name,
            email=signature.email,
            email_normalised=signature.email_normalised,
            country=signature.country,
            postcode=signature.postcode,
            consent_updates=signature.consent_updates,
            locale=signature.locale,
            status=signature.status,
            created_at=signature.created_at,
            confirmed_at=signature.confirmed_at,
            confirmation_emails=signature.confirmation_sends,
            withdrawn_at=signature.withdrawn_at,
            anonymised_at=signature.anonymised_at,
        ),
        petition=PetitionRef(slug=petition.slug, title=petition.text(signature.locale)["title"]),
        messages=messages,
        suppression=suppression,
        letters=letters,
        donations=donations,
    )


def export_filename(signature_id: int) -> str:
    return f"chorus-signature-{signature_id}.json"


# --- retention --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PetitionAnonymisation:
    petition_id: int
    slug: str
    signatures: int


@dataclass(frozen=True)
class AnonymisationReport:
    cutoff: datetime
    dry_run: bool
    petitions: list[PetitionAnonymisation] = field(default_factory=list)
    # Outbox messages of anonymised signatures whose recipient was cleared in this run.
    messages: int = 0
    # Gifts that ended before the cutoff whose donor's personal data was removed.
    donations: int = 0

    @property
    def signatures(self) -> int:
        return sum(p.signatures for p in self.petitions)


def expired_petitions(session: Session, *, cutoff: datetime) -> list[tuple[int, str]]:
    """(id, slug) of closed or archived petitions that ended before `cutoff`.

    A petition ended at `closed_at`, or at `closes_at` when it was never closed explicitly;
    one with neither date is kept (nothing says how old it is).
    """
    ended = func.coalesce(col(Petition.closed_at), col(Petition.closes_at))
    rows = session.execute(
        select(col(Petition.id), col(Petition.slug))
        .where(col(Petition.status).in_(RETAINED_UNTIL_EXPIRY), ended < cutoff)
        .order_by(col(Petition.id))
    )
    return [(petition_id, slug) for petition_id, slug in rows]


def anonymise_expired(
    engine: Engine,
    *,
    days: int,
    dry_run: bool = False,
    batch_size: int = 1000,
    now: datetime | None = None,
) -> AnonymisationReport:
    """Remove the personal data of signatures of petitions closed or archived for > `days` days.

    Each signature keeps its row, status, country, locale and dates, so counts, per-country and
    hourly totals stay right; its name and e-mail become empty, `email_normalised` becomes
    `anonymised:<id>` (it is unique per petition), the postcode NULL, consent to updates false,
    and `anonymised_at` is set. The outbox messages about anonymised signatures lose their
    recipient, and those still pending are cancelled. The petition's letters lose their writers'
    names, addresses, towns and texts, and its delivery annexes their signers' names (the
    delivery log, counts and manifests stay).

    Set-based and in batches of `batch_size` rows, each batch its own transaction (so it runs
    against a live database and can be interrupted); idempotent: already anonymised rows are
    skipped, and an interrupted run is finished by the next. `dry_run` only counts.
    Unlike the request services this commits: it opens its transactions on `engine`.
    """
    now = now or utcnow()
    cutoff = now - timedelta(days=days)
    with session_scope(engine) as session:
        petitions = expired_petitions(session, cutoff=cutoff)
    done: list[PetitionAnonymisation] = []
    for petition_id, slug in petitions:
        if dry_run:
            with session_scope(engine) as session:
                count = session.execute(
                    select(func.count())
                    .select_from(Signature)
                    .where(
                        col(Signature.petition_id) == petition_id,
                        col(Signature.anonymised_at).is_(None),
                    )
                ).scalar_one()
        else:
            count = _anonymise_petition(engine, petition_id=petition_id, batch_size=batch_size)
            with session_scope(engine) as session:
                letters = letter_service.anonymise_petition(session, petition_id=petition_id)
            if count or letters:
                with session_scope(engine) as session:
                    petition = session.get(Petition, petition_id)
                    audit_service.record(
                        session,
                        actor=None,
                        action="signatures.anonymised",
                        subject=f"petition:{slug}",
                        campaign_id=petition.campaign_id if petition else None,
                        details={"signatures": count, "letters": letters, "retention_days": days},
                    )
        log.info("anonymised %s signature(s) of %s%s", count, slug, " (dry run)" if dry_run else "")
        done.append(PetitionAnonymisation(petition_id=petition_id, slug=slug, signatures=count))
    messages = 0 if dry_run else _clear_outbox(engine, window=batch_size * 10)
    gifts = donors.anonymise_ended(engine, cutoff=cutoff, dry_run=dry_run, batch_size=batch_size)
    if gifts and not dry_run:
        with session_scope(engine) as session:
            audit_service.record(
                session,
                actor=None,
                action="donations.anonymised",
                subject="donations",
                details={"donations": gifts, "retention_days": days},
            )
    return AnonymisationReport(
        cutoff=cutoff, dry_run=dry_run, petitions=done, messages=messages, donations=gifts
    )


def _anonymise_petition(engine: Engine, *, petition_id: int, batch_size: int) -> int:
    """Anonymise one petition's signatures, `batch_size` at a time, walking up the ids."""
    total, last_id = 0, 0
    while True:
        with session_scope(engine) as session:
            stamp = utcnow()
            batch = (
                select(col(Signature.id))
                .where(
                    col(Signature.petition_id) == petition_id,
                    col(Signature.id) > last_id,
                    col(Signature.anonymised_at).is_(None),
                )
                .order_by(col(Signature.id))
                .limit(batch_size)
            )
            ids = (
                session.execute(
                    update(Signature)
                    .where(
                        col(Signature.id).in_(batch.scalar_subquery()),
                        col(Signature.anonymised_at).is_(None),  # a concurrent run got there
                    )
                    .values(
                        name="",
                        email="",
                        email_normalised=literal("anonymised:", String)
                        + cast(col(Signature.id), String),
                        postcode=None,
                        consent_updates=False,
                        anonymised_at=stamp,
                    )
                    .returning(col(Signature.id))
                    .execution_options(synchronize_session=False)
                )
                .scalars()
                .all()
            )
        if not ids:
            return total
        total += len(ids)
        last_id = max(ids)


def _clear_outbox(engine: Engine, *, window: int) -> int:
    """Clear the recipient of outbox messages about anonymised signatures; cancel pending ones.

    One pass over the outbox in windows of `window` ids (each its own transaction), matching
    messages to signatures through `payload.signature_id`, so the work grows with the outbox,
    not with the number of signatures, and a later run finishes what an interrupted one left.
    """
    with session_scope(engine) as session:
        span = outbox.id_span(session)
    if span is None:
        return 0
    low, high = span
    about_anonymised = (
        select(col(Signature.id))
        .where(
            col(Signature.id) == outbox.payload_int("signature_id"),
            col(Signature.anonymised_at).is_not(None),
        )
        .exists()
    )
    cleared = 0
    for start in range(low, high + 1, window):
        with session_scope(engine) as session:
            cleared += outbox.forget_recipients_where(
                session, about_anonymised, ids=range(start, start + window)
            )
    return cleared
