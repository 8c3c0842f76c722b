"""Signing, confirming and counting signatures."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    String,
    bindparam,
    case,
    column,
    func,
    literal,
    literal_column,
    or_,
    text,
)
from sqlalchemy import select as sql_select
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg
from sqlmodel import Session, col, select

from app.abuse import service as abuse_service
from app.abuse.service import SigningSource
from app.core import cache, metrics
from app.core.addresses import normalise_email
from app.core.config import Settings
from app.core.db import UTCDateTime, dialect_insert, utcnow
from app.core.errors import ProblemError
from app.core.tokens import make_token, read_link
from app.email import outbox
from app.petitions.models import Petition
from app.signatures import lifecycle, milestones
from app.signatures.models import Signature, SignatureCreate, SignatureStatus
from app.signatures.tally import (  # (re-exported: the counts other domains read here)
    confirmed_by_country as confirmed_by_country,
)
from app.signatures.tally import confirmed_count as confirmed_count
from app.signatures.tally import confirmed_counts as confirmed_counts
from app.webhooks import payloads as webhook_payloads
from app.webhooks import service as webhook_service

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
        ip_digests = abuse_service.ip_hashes(settings, ip) if ip else ()
        checks.append(
            abuse_service.HoldCheck(
                source=request.source,
                ip_digest=ip_digests[0] if ip_digests else None,
                domain=email_normalised.rpartition("@")[2],
                email_normalised=email_normalised,
                ip_digests=ip_digests,
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
    for held in holds:
        if held:
            log.info("signature held: %s", held)
    accepted = held_count = repeated = 0
    for batch in _rounds(rows):
        outcome = _record(session, batch, now=now, settings=settings)
        accepted, held_count, repeated = (
            a + b for a, b in zip((accepted, held_count, repeated), outcome, strict=True)
        )
    metrics.after_commit(session, metrics.SIGNATURES_ACCEPTED, accepted)
    metrics.after_commit(session, metrics.SIGNATURES_HELD, held_count)
    metrics.after_commit(session, metrics.SIGNATURES_REPEATED, repeated)


def _rounds(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The rows in rounds with one row per (petition, address) each: one upsert may not touch
    a row twice (PostgreSQL refuses it), and a batch may hold one person twice."""
    rounds: list[list[dict[str, Any]]] = []
    seen: dict[tuple[Any, str], int] = {}
    for row in rows:
        key = (row["petition_id"], row["email_normalised"])
        n = seen[key] = seen.get(key, -1) + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(row)
    return rounds


# The one way a signature is recorded, new signer or not, so that the time an answer takes
# cannot tell who has signed (issue: a repeat signer was answered 3 ms slower, after a SELECT,
# an UPDATE and an INSERT that a new signer skipped). Each row is an upsert: a new person is
# inserted; for someone who signed before, the existing row counts one more confirmation
# e-mail if still pending (at most MAX_CONFIRMATION_SENDS), and is returned either way. Then
# each returned row's e-mail is queued by the same statement: a confirmation for a pending
# signature (its dedup key names the send, so one past the cap is a no-op), "already signed"
# for a confirmed or withdrawn one (at most one a day), nothing for a held or invalidated one.


def _record(
    session: Session, rows: list[dict[str, Any]], *, now: datetime, settings: Settings
) -> tuple[int, int, int]:
    """Record `rows` (see above). -> how many were new and pending, new and held, and people
    who had signed before (for /metrics)."""
    day = now.strftime("%Y-%m-%d")
    if session.get_bind().dialect.name == "postgresql":
        # Signatures and their e-mails in one statement (a data-modifying CTE): one round trip
        # per batch, and no SQL text growing with the batch.
        params = {
            **PG_SIGN_MANY_CONSTANTS,
            "rows": _rows_json(rows),
            "now": now,
            "max_sends": settings.MAX_CONFIRMATION_SENDS,
            "day": day,
        }
        result = session.connection().exec_driver_sql(PG_SIGN_MANY_SQL, params)
        new_pending, new_held, repeated = result.one()
        return int(new_pending), int(new_held), int(repeated)
    # Core insert on the table, not the ORM-enabled one: this is the hot path of a surge. Several
    # rows go as one multi-row INSERT (SQLAlchemy's "insertmanyvalues").
    table = Signature.__table__  # type: ignore[attr-defined]
    stmt = dialect_insert(session)(table)
    recorded = session.execute(
        stmt.on_conflict_do_update(
            index_elements=["petition_id", "email_normalised"],
            set_={
                "confirmation_sends": case(
                    (
                        (table.c.status == SignatureStatus.pending)
                        & (table.c.confirmation_sends < settings.MAX_CONFIRMATION_SENDS),
                        table.c.confirmation_sends + 1,
                    ),
                    else_=table.c.confirmation_sends,
                )
            },
        ).returning(
            table.c.id,
            table.c.email,
            table.c.status,
            table.c.confirmation_sends,
            table.c.created_at,
        ),
        rows,
    ).all()
    outbox.enqueue_many(
        session,
        [
            job
            for id_, email, status, sends, _ in recorded
            if (job := _mail_job(id_, email, status, sends, day)) is not None
        ],
    )
    repeated = sum(1 for *_, created_at in recorded if created_at < now)
    new_held = sum(
        1
        for _, _, status, _, created_at in recorded
        if created_at >= now and status == SignatureStatus.suspect
    )
    return len(recorded) - repeated - new_held, new_held, repeated


def _mail_job(id_: int, email: str, status: str, sends: int, day: str) -> dict[str, Any] | None:
    """The e-mail a signature just recorded gets (see _record); PG_SIGN_MANY says the same."""
    if status == SignatureStatus.pending:
        return {
            "kind": "signature_confirmation",
            "payload": {"signature_id": id_},
            "dedup_key": outbox.confirmation_key(id_, sends),
            "recipient": email,
        }
    if status in (SignatureStatus.confirmed, SignatureStatus.withdrawn):
        return {
            "kind": "signature_already_signed",
            "payload": {"signature_id": id_},
            "dedup_key": outbox.already_signed_key(id_, day),
            "recipient": email,
        }
    return None  # held or invalidated: no e-mail, and the same answer as always


# PostgreSQL: _record in one statement (a data-modifying CTE): the batch's signatures from one
# array per column, then each returned row's e-mail through the outbox's own INSERT ... SELECT.
_PG_RECORDED = (
    text(
        """
        INSERT INTO signature AS s (petition_id, name, email, email_normalised, country,
                                    postcode, consent_updates, locale, status, held_reason,
                                    ip_hash, email_domain, created_at, confirmation_sends)
        SELECT r.*, :now, 1
        FROM json_to_recordset(CAST(:rows AS json))
             AS r(petition_id integer, name text, email text, email_normalised text,
                  country text, postcode text, consent_updates boolean, locale text,
                  status text, held_reason text, ip_hash text, email_domain text)
        ON CONFLICT (petition_id, email_normalised) DO UPDATE
        SET confirmation_sends = CASE
            WHEN s.status = 'pending' AND s.confirmation_sends < :max_sends
            THEN s.confirmation_sends + 1 ELSE s.confirmation_sends END
        RETURNING s.id, s.email, s.status, s.confirmation_sends, s.created_at
        """
    )
    .columns(
        column("id", Integer),
        column("email", String),
        column("status", String),
        column("confirmation_sends", Integer),
        column("created_at", UTCDateTime()),
    )
    .cte("recorded")
)
_PG_NOW = bindparam("now", type_=UTCDateTime())
_PG_PENDING = _PG_RECORDED.c.status == SignatureStatus.pending.value
_PG_MAIL = outbox.queue_statement(
    sql_select(
        case(
            (_PG_PENDING, literal("signature_confirmation", String)),
            else_=literal("signature_already_signed", String),
        ),
        func.json_build_object(literal_column("'signature_id'"), _PG_RECORDED.c.id),
        case(
            (
                _PG_PENDING,
                outbox.confirmation_key(_PG_RECORDED.c.id, _PG_RECORDED.c.confirmation_sends),
            ),
            else_=outbox.already_signed_key(_PG_RECORDED.c.id, bindparam("day", type_=String)),
        ),
        _PG_RECORDED.c.email,
        _PG_NOW,
        _PG_NOW,
    ).where(  # (not IN: its list would be a parameter SQLAlchemy expands per execution)
        or_(
            _PG_PENDING,
            _PG_RECORDED.c.status == SignatureStatus.confirmed.value,
            _PG_RECORDED.c.status == SignatureStatus.withdrawn.value,
        )
    ),
    dialect="postgresql",
).cte("queued")
# The statement's top level counts what _record returns (for /metrics); both CTEs write, and
# PostgreSQL runs each once whatever the top level reads.
_PG_NEW = _PG_RECORDED.c.created_at >= _PG_NOW
_PG_HELD = _PG_RECORDED.c.status == SignatureStatus.suspect.value
PG_SIGN_MANY: Select[int, int, int] = (
    sql_select(
        func.count().filter(_PG_NEW & ~_PG_HELD),
        func.count().filter(_PG_NEW & _PG_HELD),
        func.count().filter(~_PG_NEW),
    )
    .select_from(_PG_RECORDED)
    .add_cte(_PG_MAIL)
)
# The statement as the driver takes it, compiled once: a batch hands it to psycopg directly,
# without SQLAlchemy's per-execution work (a third of the CPU a batch spent in Python). Its
# constants (the e-mails' kinds, the dedup keys' prefixes) are parameters SQLAlchemy made.
_PG_COMPILED = PG_SIGN_MANY.compile(dialect=postgresql_psycopg.dialect())  # type: ignore[no-untyped-call]
PG_SIGN_MANY_SQL = _PG_COMPILED.string
PG_SIGN_MANY_CONSTANTS = {
    key: value
    for key, value in _PG_COMPILED.construct_params(_check=False).items()
    if value is not None
}
assert "POSTCOMPILE" not in PG_SIGN_MANY_SQL
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


def _rows_json(rows: list[dict[str, Any]]) -> str:
    """The rows as one JSON document (json_to_recordset): one parameter for the driver to send
    instead of an array per column, each dumped element by element in Python."""
    return json.dumps(
        [{name: row[name] for name in PG_COLUMNS} for row in rows],
        ensure_ascii=False,
        separators=(",", ":"),
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


def _petition(session: Session, *, petition_id: int, settings: Settings) -> Petition | None:
    """A signature's petition, reused by this server process for CACHE_SECONDS as signing
    reuses it (app/core/cache.py; detached: read, never changed). Read once per confirmation,
    it was a sixth of a confirmation's CPU."""

    def load() -> Petition | None:
        found = session.get(Petition, petition_id)
        if found is not None and settings.CACHE_SECONDS > 0:
            session.expunge(found)
        return found

    return cache.cached(("petition-id", petition_id), settings.CACHE_SECONDS, load)


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
    petition = _petition(session, petition_id=signature.petition_id, settings=settings)
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
    # Accepted while the petition was open, so it counts even if the petition has closed since:
    # nothing already accepted is lost.
    newly_confirmed = signature.status == SignatureStatus.pending and lifecycle.confirm(
        session, signature=signature, settings=settings
    )
    count = confirmed_count(session, petition_id=petition.id)
    if newly_confirmed:
        # Queues the organisers' e-mail when this confirmation reached 25/50/75/100 % of the goal.
        milestones.check_milestones(session, petition=petition, count=count)
        webhook_service.emit(
            session,
            campaign_id=petition.campaign_id,
            event="signature.confirmed",
            subject=f"signature:{signature.id}",
            data=webhook_payloads.signature(signature, petition, count=count),
        )
    return Confirmation(petition=petition, newly_confirmed=newly_confirmed, signature_count=count)


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
