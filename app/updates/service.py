"""Campaign updates to supporters: queueing them throttled, and unsubscribing from them.

An update is queued for every signer who confirmed, asked for updates and whose address is not
suppressed, with one set-based INSERT ... SELECT (a petition may have hundreds of thousands of
signers). Each message is due a little after the previous one, at UPDATE_SEND_RATE_PER_MINUTE,
and after the messages of updates queued earlier, so the rate holds across updates. The renderer
(`app/updates/tasks.py`) checks again at send time, so a signer who withdrew or unsubscribed in
the meantime gets nothing.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    Integer,
    Interval,
    String,
    exists,
    func,
    literal,
    literal_column,
)
from sqlalchemy import select as sql_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.config import Settings
from app.core.db import UTCDateTime, utcnow
from app.core.errors import ProblemError, field_problem
from app.core.i18n import SUPPORTED_LOCALES
from app.core.tokens import make_token, read_link
from app.email import outbox
from app.email import service as email_service
from app.email.models import Suppression, SuppressionReason
from app.petitions.models import Petition
from app.signatures import lifecycle
from app.signatures.models import Signature, SignatureStatus
from app.updates.models import PetitionUpdate, UpdateCreate, UpdateSent

KIND = "petition_update"
UNSUBSCRIBE_PURPOSE = "unsubscribe"
# An unsubscribe link must keep working for as long as anyone may still act on an old update.
UNSUBSCRIBE_TTL_SECONDS = 3 * 365 * 24 * 3600
MICROSECONDS_PER_MINUTE = 60_000_000
SEND_KEY_MAX = 64


# --- API shapes -------------------------------------------------------------------------------


class UpdateSummary(BaseModel):
    id: int
    created_at: datetime
    sent_by: str | None
    locales: list[str]
    subject: str
    recipients: int


class UpdateList(BaseModel):
    data: list[UpdateSummary]
    count: int


# --- sending ----------------------------------------------------------------------------------


def _clean_subject(text: str) -> str:
    # A header is one line: no newlines (header injection) and no other control characters.
    return " ".join("".join(" " if unicodedata.category(c)[0] == "C" else c for c in text).split())


def _clean_body(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    kept = (c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")
    return "\n".join(line.rstrip() for line in "".join(kept).split("\n")).strip()


def _translations(petition: Petition, data: UpdateCreate) -> dict[str, dict[str, str]]:
    if petition.default_locale not in data.translations:
        raise field_problem(
            f"translations.{petition.default_locale}",
            "default_locale_missing",
            f"Give the update in the petition's default language ({petition.default_locale}); "
            "signers whose language is missing get that one",
        )
    known = [*petition.locales, *(loc for loc in SUPPORTED_LOCALES if loc not in petition.locales)]
    out: dict[str, dict[str, str]] = {}
    for locale, text in data.translations.items():
        if locale not in known:
            raise field_problem(
                f"translations.{locale}",
                "locale_unknown",
                f"Unknown language {locale!r}: use one of {', '.join(known)}",
            )
        subject, body = _clean_subject(text.subject), _clean_body(text.body)
        if not subject:
            raise field_problem(f"translations.{locale}.subject", "missing", "Enter a subject")
        if not body:
            raise field_problem(f"translations.{locale}.body", "missing", "Enter the text")
        out[locale] = {"subject": subject, "body": body}
    return out


def _offset_us(start: datetime, position: Any, rate: int) -> Any:
    """Microseconds from `start` (cut to the second) to message number `position` (from 0).

    Works the same on Python ints and on SQL expressions, so the schedule reported to the
    organiser is the one written to the outbox.
    """
    return start.microsecond + (position * MICROSECONDS_PER_MINUTE) // rate


def _due_at(session: Session, start: datetime, offset: ColumnElement[Any]) -> ColumnElement[Any]:
    """SQL for `start` (whole seconds) plus `offset` microseconds, as the dialect stores it."""
    whole = start.astimezone(UTC).replace(microsecond=0)
    if session.get_bind().dialect.name == "sqlite":
        # The text SQLAlchemy stores for a naive UTC datetime: "YYYY-MM-DD HH:MM:SS.ffffff".
        seconds = func.strftime(
            "%Y-%m-%d %H:%M:%S",
            whole.strftime("%Y-%m-%d %H:%M:%S"),
            "+" + (offset // 1_000_000).cast(String) + " seconds",
            type_=String(),
        )
        return seconds + func.printf(".%06d", offset % 1_000_000, type_=String())
    micro = literal_column("INTERVAL '1 microsecond'", type_=Interval())
    return literal(whole, UTCDateTime()) + offset * micro


def _schedule_start(session: Session, *, now: datetime, rate: int) -> datetime:
    """When this update's first message is due: now, or after the updates still queued.

    Only messages not tried yet make the schedule; one waiting to retry after an SMTP error
    does not hold the next update back.
    """
    last = outbox.last_untried_due(session, kind=KIND)
    if last is None:
        return now
    return max(now, last + timedelta(microseconds=MICROSECONDS_PER_MINUTE // rate))


def _audience(petition_id: int) -> list[ColumnElement[bool]]:
    """Who gets an update: signers who confirmed, asked for updates and are not suppressed."""
    return [
        col(Signature.petition_id) == petition_id,
        col(Signature.status) == SignatureStatus.confirmed,
        col(Signature.consent_updates).is_(True),
        col(Signature.anonymised_at).is_(None),
        ~exists().where(col(Suppression.email_normalised) == col(Signature.email_normalised)),
    ]


def audience(session: Session, *, petition: Petition) -> int:
    """How many signers an update sent now would be queued for (as `send` selects them)."""
    assert petition.id is not None
    query = sql_select(func.count()).select_from(Signature).where(*_audience(petition.id))
    return int(session.execute(query).scalar_one())


def prepare(petition: Petition, data: UpdateCreate) -> dict[str, dict[str, str]]:
    """The update's texts as signers will get them, or the problem `send` would raise."""
    return _translations(petition, data)


def send(
    session: Session,
    *,
    petition: Petition,
    data: UpdateCreate,
    user: User,
    settings: Settings,
    key: str | None = None,
) -> UpdateSent:
    """Record an update and queue it, throttled, for every signer who should get it.

    With a `key`, a second request carrying it (a double click, a client retrying) sends
    nothing and answers as the first did; the same key with other texts is refused.
    """
    assert petition.id is not None
    translations = _translations(petition, data)
    if key is not None and not 0 < len(key) <= SEND_KEY_MAX:
        raise field_problem("Idempotency-Key", "string_too_long", "use at most 64 characters")
    if key is not None:
        earlier = _sent_with_key(session, petition_id=petition.id, key=key)
        if earlier is not None:
            return _replayed(earlier, translations)
    now = utcnow()
    record = PetitionUpdate(
        petition_id=petition.id,
        translations=translations,
        sent_by=user.id,
        created_at=now,
        send_key=key,
    )
    try:
        with session.begin_nested():
            session.add(record)
            session.flush()
    except IntegrityError:
        # The same key committed by a concurrent request while this one was deciding.
        assert key is not None
        earlier = _sent_with_key(session, petition_id=petition.id, key=key)
        assert earlier is not None
        return _replayed(earlier, translations)
    assert record.id is not None
    update_id = int(record.id)

    rate = settings.UPDATE_SEND_RATE_PER_MINUTE
    start = _schedule_start(session, now=now, rate=rate)
    position = func.row_number().over(order_by=col(Signature.id)) - 1
    dialect = session.get_bind().dialect.name
    json_object = func.json_build_object if dialect == "postgresql" else func.json_object
    payload = json_object(
        literal_column("'update_id'"),
        literal_column(str(update_id), type_=Integer()),
        literal_column("'signature_id'"),
        col(Signature.id),
    )
    rows = sql_select(
        literal_column(f"'{KIND}'", type_=String()),
        payload,
        outbox.dedup_key_sql("update", update_id, col(Signature.id)),
        col(Signature.email),
        _due_at(session, start, _offset_us(start, position, rate)),
        literal(now, UTCDateTime()),
    ).where(*_audience(petition.id))
    recipients = outbox.enqueue_from_query(session, rows)

    record.recipients = recipients
    session.flush()
    audit_service.record(
        session,
        actor=user,
        action="update.send",
        subject=f"petition:{petition.slug}",
        campaign_id=petition.campaign_id,
        details={"update_id": update_id, "recipients": recipients, "locales": list(translations)},
    )
    whole = start.replace(microsecond=0)
    last = max(recipients - 1, 0)
    record.first_send_at = whole + timedelta(microseconds=_offset_us(start, 0, rate))
    record.last_send_at = whole + timedelta(microseconds=_offset_us(start, last, rate))
    session.flush()
    return _sent(record)


def _sent_with_key(session: Session, *, petition_id: int, key: str) -> PetitionUpdate | None:
    return session.exec(
        select(PetitionUpdate).where(
            PetitionUpdate.petition_id == petition_id, PetitionUpdate.send_key == key
        )
    ).first()


def _sent(record: PetitionUpdate) -> UpdateSent:
    assert record.id is not None
    assert record.first_send_at is not None and record.last_send_at is not None
    return UpdateSent(
        id=record.id,
        recipients=record.recipients,
        first_send_at=record.first_send_at,
        last_send_at=record.last_send_at,
    )


def _replayed(earlier: PetitionUpdate, translations: dict[str, dict[str, str]]) -> UpdateSent:
    if earlier.translations != translations:
        raise field_problem(
            "Idempotency-Key",
            "idempotency_key_reused",
            "this key was already used to send a different update; use a new key",
        )
    return _sent(earlier)


def list_updates(session: Session, *, petition: Petition) -> UpdateList:
    """The petition's updates, newest first, with how many signers each was queued for."""
    rows = session.exec(
        select(PetitionUpdate, User.email)
        .join(User, col(User.id) == col(PetitionUpdate.sent_by), isouter=True)
        .where(PetitionUpdate.petition_id == petition.id)
        .order_by(col(PetitionUpdate.created_at).desc(), col(PetitionUpdate.id).desc())
    ).all()
    data = []
    for record, sent_by in rows:
        assert record.id is not None
        locales = sorted(record.translations, key=lambda loc: (loc != petition.default_locale, loc))
        text = record.translations.get(petition.default_locale) or record.translations[locales[0]]
        data.append(
            UpdateSummary(
                id=record.id,
                created_at=record.created_at,
                sent_by=sent_by,
                locales=locales,
                subject=text["subject"],
                recipients=record.recipients,
            )
        )
    return UpdateList(data=data, count=len(data))


# --- unsubscribing ----------------------------------------------------------------------------


def unsubscribe_token(settings: Settings, *, signature_id: int) -> str:
    return make_token(
        settings,
        purpose=UNSUBSCRIBE_PURPOSE,
        subject=signature_id,
        ttl_seconds=UNSUBSCRIBE_TTL_SECONDS,
    )


def unsubscribe_url(settings: Settings, *, signature_id: int) -> str:
    """The link in every update, also given in its List-Unsubscribe header (RFC 8058)."""
    return settings.public_url(
        f"/unsubscribe/{unsubscribe_token(settings, signature_id=signature_id)}"
    )


def signature_for_token(session: Session, *, token: str, settings: Settings) -> Signature:
    """The signature an unsubscribe link was made for.

    Raises a problem: 400 for a malformed or forged link, 410 for an expired one or when the
    signature no longer exists (then nothing more is sent about it anyway).
    """
    claims = read_link(settings, token, purpose=UNSUBSCRIBE_PURPOSE, link="unsubscribe link")
    signature = session.get(Signature, claims.subject)
    if signature is None or signature.anonymised_at is not None:
        raise ProblemError(410, "signature-gone", "This signature no longer exists")
    return signature


def is_unsubscribed(session: Session, *, signature: Signature) -> bool:
    return email_service.is_suppressed(session, email=signature.email_normalised)


def unsubscribe(session: Session, *, signature: Signature) -> None:
    """No more updates to this address, from any campaign; the signature still counts."""
    assert signature.id is not None
    email_service.suppress(
        session, email=signature.email_normalised, reason=SuppressionReason.unsubscribed
    )
    lifecycle.stop_updates(session, signature=signature)
