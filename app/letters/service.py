"""Letter templates, supporter letters, petition deliveries and the delivery log."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import String, case, cast, func, literal, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.abuse import service as abuse_service
from app.abuse.service import SigningSource
from app.audit import service as audit_service
from app.auth import service as auth_service
from app.auth.models import User
from app.campaigns import service as campaign_service
from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.db import dialect_insert, utcnow
from app.core.errors import FieldError, ProblemError
from app.core.i18n import country_name as _country_name
from app.core.spreadsheet import UTF8_BOM, as_text
from app.core.tokens import make_token, read_link
from app.email import outbox
from app.email.models import OutboxStatus
from app.exports.service import iso_utc, neutralise
from app.letters import defaults, engine
from app.letters.models import (
    CountrySummary,
    DeliveryCreate,
    DeliveryLogEntry,
    DeliveryState,
    HoldReason,
    Letter,
    LetterAccepted,
    LetterBand,
    LetterConfirmResult,
    LetterCreate,
    LetterDelivery,
    LetterStatus,
    LetterTemplate,
    PetitionDelivery,
    PetitionDeliveryAdmin,
    PreviewRequest,
    TemplateAdmin,
    TemplateKind,
    TemplateSave,
)
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.signatures import service as signature_service
from app.signatures.models import Signature, SignatureStatus
from app.signatures.validation import normalise_email
from app.targets.models import DeliveryChannel, Target
from app.webhooks import payloads as webhook_payloads
from app.webhooks import service as webhook_service

logger = logging.getLogger(__name__)

CONFIRM_PURPOSE = "confirm-letter"


# --- templates --------------------------------------------------------------------------------


def _problem(problem: engine.TemplateProblem) -> ProblemError:
    errors = [
        FieldError(
            field=part,
            type="template_invalid",
            message=f"line {line}: {text}" if line else text,
        )
        for part, line, text in problem.problems
    ]
    return ProblemError(
        422,
        "template-invalid",
        "The template has errors",
        "; ".join(f"{e.field}: {e.message}" for e in errors),
        errors=errors,
    )


def _sample_context(kind: TemplateKind, language: str) -> dict[str, Any]:
    """Made-up values of every variable, to try a template out when it is saved."""
    context: dict[str, Any] = {
        "target": {"name": "Name", "role": "Role", "organisation": "Ministry", "country": "UA"},
        "petition": {
            "title": "Title",
            "url": "https://example.org/p",
            "confirmed_count": 1234,
            "goal": 10000,
        },
        "campaign": {"name": "Campaign"},
        "date": engine.format_date(date(2026, 1, 31), language),
    }
    if kind == TemplateKind.supporter:
        context["supporter"] = {
            "name": "Name",
            "city": "City",
            "country": "Ukraine",
            "country_code": "UA",
        }
        context["message"] = "Text\n\nMore text"
    else:
        context["delivery"] = {
            "number": 1,
            "confirmed_count": 1234,
            "countries": [{"country": "UA", "name": "Ukraine", "count": 1000}],
            "annex_filename": "signatures.csv",
            "annex_sha256": "0" * 64,
            "annex_rows": 1234,
            "annex_url": "",
        }
    return context


def check_template(kind: TemplateKind, language: str, *, subject: str, body: str) -> None:
    """422 with each problem and its line; a template that checks out is also tried once."""
    try:
        engine.check(kind, subject=subject, body=body)
        sample = _sample_context(kind, language)
        engine.render(subject, body, sample, language=language)
        engine.try_longest(subject, body, sample, language=language)  # real letters fit too
    except engine.TemplateProblem as exc:
        raise _problem(exc) from None


def find_template(
    session: Session, *, campaign_id: int, kind: TemplateKind, language: str
) -> LetterTemplate | None:
    return session.exec(
        select(LetterTemplate).where(
            LetterTemplate.campaign_id == campaign_id,
            LetterTemplate.kind == kind,
            LetterTemplate.language == language,
        )
    ).first()


def save_template(
    session: Session,
    *,
    actor: User,
    campaign: Campaign,
    kind: TemplateKind,
    language: str,
    data: TemplateSave,
) -> LetterTemplate:
    assert campaign.id is not None
    check_template(kind, language, subject=data.subject, body=data.body)
    if kind == TemplateKind.delivery and data.message:
        raise campaign_service.invalid(
            "message", "message_unused", "Only supporter templates have a starting text"
        )
    template = find_template(session, campaign_id=campaign.id, kind=kind, language=language)
    if template is None:
        template = LetterTemplate(
            campaign_id=campaign.id, kind=kind, language=language, subject="", body=""
        )
    template.subject, template.body, template.message = data.subject, data.body, data.message
    template.updated_at = utcnow()
    session.add(template)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="letter_template.save",
        subject=f"letter_template:{kind}:{language}",
        campaign_id=campaign.id,
    )
    return template


def delete_template(
    session: Session, *, actor: User, campaign: Campaign, kind: TemplateKind, language: str
) -> None:
    assert campaign.id is not None
    template = find_template(session, campaign_id=campaign.id, kind=kind, language=language)
    if template is None:
        raise ProblemError(404, "template-not-found", "No such letter template")
    session.delete(template)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="letter_template.delete",
        subject=f"letter_template:{kind}:{language}",
        campaign_id=campaign.id,
    )


def template_to_admin(template: LetterTemplate) -> TemplateAdmin:
    return TemplateAdmin(
        kind=template.kind,
        language=template.language,
        subject=template.subject,
        body=template.body,
        message=template.message,
        updated_at=template.updated_at,
    )


def list_templates(session: Session, *, campaign_id: int) -> list[TemplateAdmin]:
    rows = session.exec(
        select(LetterTemplate)
        .where(LetterTemplate.campaign_id == campaign_id)
        .order_by(col(LetterTemplate.kind), col(LetterTemplate.language))
    )
    return [template_to_admin(template) for template in rows]


def supporter_template(
    session: Session, *, petition: Petition, locale: str
) -> LetterTemplate | None:
    """The supporter template in `locale`, else in the campaign's default language."""
    campaign = session.get(Campaign, petition.campaign_id)
    assert campaign is not None and campaign.id is not None
    for language in dict.fromkeys([locale, campaign.default_locale, petition.default_locale]):
        found = find_template(
            session, campaign_id=campaign.id, kind=TemplateKind.supporter, language=language
        )
        if found is not None:
            return found
    return None


def form_context(session: Session, *, petition: Petition, locale: str) -> dict[str, Any]:
    """What the petition page needs for its letter form (no form without a template)."""
    template = supporter_template(session, petition=petition, locale=locale)
    targets = letter_targets(session, petition=petition) if template else []
    # Each official in the page's language.
    letter = {"targets": [{"key": t.key, **t.text(locale)} for t in targets]} if targets else None
    form: dict[str, Any] = {
        "targets": [t.key for t in targets],
        "message": template.message if template else "",
    }
    return {"letter": letter, "letter_form": form, "letter_errors": {}, "letter_held": False}


# --- rendering --------------------------------------------------------------------------------


def country_name(code: str, language: str) -> str:
    return _country_name(code, language.split("-")[0])


def letter_context(
    session: Session,
    *,
    settings: Settings,
    petition: Petition,
    target: Target,
    language: str,
    today: date | None = None,
) -> dict[str, Any]:
    assert petition.id is not None
    campaign = session.get(Campaign, petition.campaign_id)
    assert campaign is not None
    names = campaign.translations.get(language) or campaign.translations.get(
        campaign.default_locale, {}
    )
    text_locale = language if language in petition.translations else petition.default_locale
    return {
        "target": {
            **target.text(language),  # the official in the letter's language
            "country": country_name(target.country, language),
        },
        "petition": {
            "title": petition.text(text_locale)["title"],
            "url": petition_service.page_url(settings, petition, text_locale),
            "confirmed_count": signature_service.confirmed_count(session, petition_id=petition.id),
            "goal": petition.goal,
        },
        "campaign": {"name": names.get("name", campaign.slug)},
        "date": engine.format_date(today or utcnow().date(), language),
    }


def supporter_vars(letter: Letter, language: str) -> dict[str, Any]:
    return {
        "supporter": {
            "name": letter.name,
            "city": letter.city,
            "country": country_name(letter.country, language),
            "country_code": letter.country,
        },
        "message": letter.message,
    }


def preview(
    session: Session,
    *,
    settings: Settings,
    campaign: Campaign,
    kind: TemplateKind,
    language: str,
    data: PreviewRequest,
) -> engine.Rendered:
    assert campaign.id is not None
    target = session.get(Target, data.target_id)
    if target is None or target.campaign_id != campaign.id:
        raise campaign_service.invalid("target_id", "target_unknown", "No such target here")
    if data.petition:
        petition = session.exec(
            select(Petition).where(
                Petition.slug == data.petition, Petition.campaign_id == campaign.id
            )
        ).first()
        if petition is None:
            raise campaign_service.invalid("petition", "petition_unknown", "No such petition here")
    else:
        petition = session.exec(
            select(Petition).where(Petition.campaign_id == campaign.id).order_by(col(Petition.id))
        ).first()
        if petition is None:
            raise ProblemError(409, "no-petition", "The campaign has no petition to preview with")
    if data.subject is not None or data.body is not None:
        saved = find_template(session, campaign_id=campaign.id, kind=kind, language=language)
        subject = data.subject if data.subject is not None else (saved.subject if saved else "")
        body = data.body if data.body is not None else (saved.body if saved else "")
        suggested = saved.message if saved else ""
        check_template(kind, language, subject=subject, body=body)
    else:
        saved = find_template(session, campaign_id=campaign.id, kind=kind, language=language)
        if saved is None:
            if kind == TemplateKind.delivery and language in defaults.DELIVERY:
                subject, body = defaults.DELIVERY[language]
                suggested = ""
            else:
                raise ProblemError(404, "template-not-found", "No such letter template")
        else:
            subject, body, suggested = saved.subject, saved.body, saved.message
    context = letter_context(
        session, settings=settings, petition=petition, target=target, language=language
    )
    if kind == TemplateKind.supporter:
        sample = Letter(
            campaign_id=campaign.id,
            petition_id=petition.id or 0,
            name=data.supporter.name,
            email="",
            email_normalised="",
            city=data.supporter.city,
            country=data.supporter.country,
            locale=language,
            message=data.message if data.message is not None else suggested,
            signature=b"",
        )
        context.update(supporter_vars(sample, language))
    else:
        context["delivery"] = upcoming_delivery_vars(session, petition=petition, language=language)
    try:
        return engine.render(subject, body, context, language=language)
    except engine.TemplateProblem as exc:
        raise _problem(exc) from None


# --- near-duplicates --------------------------------------------------------------------------
#
# Each message gets a MinHash signature over its word triples: the share of equal slots in two
# signatures estimates how much of their text the two letters share (Jaccard similarity). The
# signature is cut into bands; letters with an equal band are the candidates, looked up through
# an index, and only those (the most recent few hundred) are compared slot by slot.

_WORD = re.compile(r"\w+")
SLOTS = 64
BANDS = 16  # of SLOTS // BANDS slots each
NEAR_DUPLICATE = 0.8  # estimated share of text in common from which letters are near-duplicates
CANDIDATES = 500
_PRIME = (1 << 61) - 1
_COEFFICIENTS = [
    (
        int.from_bytes(hashlib.blake2b(f"a{i}".encode(), digest_size=8).digest()) % _PRIME | 1,
        int.from_bytes(hashlib.blake2b(f"b{i}".encode(), digest_size=8).digest()) % _PRIME,
    )
    for i in range(SLOTS)
]


def signature(text: str) -> bytes:
    """The MinHash signature of a text: SLOTS minima of SLOTS hash functions, 32 bits each."""
    words = _WORD.findall(text.casefold())
    shingles = {" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))}
    hashes = [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest()) for s in shingles]
    minima = [min(((a * h + b) % _PRIME) for h in hashes) & 0xFFFFFFFF for a, b in _COEFFICIENTS]
    return b"".join(m.to_bytes(4, "big") for m in minima)


def similarity(first: bytes, second: bytes) -> float:
    same = sum(first[i : i + 4] == second[i : i + 4] for i in range(0, SLOTS * 4, 4))
    return same / SLOTS


def bands(sig: bytes) -> list[int]:
    size = len(sig) // BANDS
    return [
        int.from_bytes(
            hashlib.blake2b(bytes([n]) + sig[n * size : (n + 1) * size], digest_size=8).digest(),
            signed=True,
        )
        for n in range(BANDS)
    ]


def similar_count(session: Session, *, campaign_id: int, sig: bytes, settings: Settings) -> int:
    """How many recent letters of the campaign are nearly identical to this signature."""
    since = utcnow() - timedelta(days=settings.LETTER_DUPLICATE_WINDOW_DAYS)
    candidates = (
        select(LetterBand.letter_id)
        .where(LetterBand.campaign_id == campaign_id, col(LetterBand.band_hash).in_(bands(sig)))
        .distinct()
        .order_by(col(LetterBand.letter_id).desc())
        .limit(CANDIDATES)
    )
    others = session.exec(
        select(Letter.signature).where(
            col(Letter.id).in_(candidates.scalar_subquery()),
            col(Letter.created_at) >= since,
            Letter.status == LetterStatus.confirmed,  # bots' unconfirmed letters do not count
        )
    ).all()
    return sum(1 for other in others if similarity(sig, other) >= NEAR_DUPLICATE)


# --- supporter letters ------------------------------------------------------------------------


def letter_targets(session: Session, *, petition: Petition) -> list[Target]:
    """The petition's targets a supporter may write to."""
    assert petition.id is not None
    return [
        t
        for t in petition_service.targets(session, petition_id=petition.id)
        if (t.delivery_channel == DeliveryChannel.email and t.email)
        or (t.delivery_channel == DeliveryChannel.postal and t.postal_address)
    ]


def submit(
    session: Session,
    *,
    petition: Petition,
    data: LetterCreate,
    locale: str,
    settings: Settings,
    source: SigningSource | None = None,
) -> LetterAccepted:
    """Keep the letter and ask the supporter to confirm their address; nothing is sent before.

    A letter nearly identical to LETTER_DUPLICATE_LIMIT recent confirmed others is kept but
    held: once confirmed, an organiser decides; a personalised letter confirmed later replaces
    it. Like signatures, a letter from a honeypot, a blocked source or an IP address over
    RATE_LIMIT_IP_PER_HOUR letters an hour gets no e-mail and is never sent, but exactly the
    answer it would have had otherwise (held as a near-duplicate or not).
    """
    source = source or SigningSource()
    assert petition.id is not None
    petition_service.ensure_accepting(petition)
    template = supporter_template(session, petition=petition, locale=locale)
    if template is None:
        raise ProblemError(409, "letters-closed", "This petition takes no letters")
    available = {t.key: t for t in letter_targets(session, petition=petition)}
    unknown = [key for key in data.targets if key not in available]
    if unknown:
        raise campaign_service.invalid(
            "targets",
            "target_unknown",
            f"Not among this petition's officials: {', '.join(unknown)}",
        )
    sig = signature(data.message)
    similar = similar_count(session, campaign_id=petition.campaign_id, sig=sig, settings=settings)
    held = similar >= settings.LETTER_DUPLICATE_LIMIT
    email_normalised = normalise_email(data.email)
    ip_digests = abuse_service.ip_hashes(settings, source.ip) if source.ip else ()
    ip_digest = ip_digests[0] if ip_digests else None
    suspect = source.honeypot or abuse_service.blocked(
        session, settings=settings, ip_digests=ip_digests, email_normalised=email_normalised
    )
    if ip_digests and not suspect:
        from_ip = session.exec(
            select(func.count())
            .select_from(Letter)
            .where(
                col(Letter.ip_hash).in_(ip_digests),
                col(Letter.created_at) >= utcnow() - timedelta(hours=1),
            )
        ).one()
        suspect = from_ip >= settings.RATE_LIMIT_IP_PER_HOUR
    letter = Letter(
        campaign_id=petition.campaign_id,
        petition_id=petition.id,
        name=data.name,
        email=data.email,
        email_normalised=email_normalised,
        city=data.city,
        country=data.country,
        locale=template.language,
        message=data.message,
        target_ids=[available[key].id or 0 for key in dict.fromkeys(data.targets)],
        signature=sig,
        held_reason=HoldReason.suspect if suspect else HoldReason.near_duplicate if held else None,
        ip_hash=ip_digest,
    )
    # Nobody can flood someone's inbox with confirmation requests: a few a day per address.
    recent = session.exec(
        select(func.count())
        .select_from(Letter)
        .where(
            Letter.petition_id == petition.id,
            Letter.email_normalised == letter.email_normalised,
            col(Letter.created_at) >= utcnow() - timedelta(days=1),
        )
    ).one()
    session.add(letter)
    session.flush()
    assert letter.id is not None
    session.execute(
        dialect_insert(session)(LetterBand)
        .values(
            [
                {"campaign_id": letter.campaign_id, "band_hash": band, "letter_id": letter.id}
                for band in set(bands(sig))
            ]
        )
        .on_conflict_do_nothing()
    )
    if suspect:  # no e-mail, but the answer a person would get: bots learn nothing
        logger.info("letter %s held as suspect", letter.id)
    elif recent < settings.MAX_CONFIRMATION_SENDS:
        outbox.enqueue(
            session,
            kind="letter_confirmation",
            payload={"letter_id": letter.id, "locale": locale},
            dedup_key=f"letter-confirm:{letter.id}",
            recipient=letter.email,
        )
    detail = None
    if held:
        detail = (
            f"Your letter is nearly identical to {similar} others. Officials set aside mass "
            "mail: it is held for review. Put it in your own words and send it again to have it "
            "delivered; once confirmed, the new letter replaces this one."
        )
    return LetterAccepted(held=held, detail=detail)


def confirmation_token(settings: Settings, *, letter_id: int) -> str:
    ttl = settings.CONFIRMATION_TOKEN_TTL_HOURS * 3600
    return make_token(settings, purpose=CONFIRM_PURPOSE, subject=letter_id, ttl_seconds=ttl)


@dataclass
class Confirmed:
    result: LetterConfirmResult
    petition: Petition
    locale: str


def confirm(session: Session, *, token: str, settings: Settings) -> Confirmed:
    claims = read_link(
        settings,
        token,
        purpose=CONFIRM_PURPOSE,
        invalid_status=404,
        renew="Write the letter again to get a new link.",
    )
    letter = session.exec(
        select(Letter).where(Letter.id == claims.subject).with_for_update()
    ).first()
    if letter is None:
        raise ProblemError(404, "token-invalid", "This link is not valid")
    petition = session.get(Petition, letter.petition_id)
    assert petition is not None and letter.id is not None
    if letter.held_reason == HoldReason.suspect:
        raise ProblemError(404, "token-invalid", "This link is not valid")
    if letter.status == LetterStatus.superseded:
        raise ProblemError(
            409, "letter-superseded", "You sent a newer letter, which replaced this one"
        )
    already = letter.status == LetterStatus.confirmed
    created = 0
    if not already:
        letter.status = LetterStatus.confirmed
        letter.confirmed_at = utcnow()
        session.add(letter)
        _supersede_older(session, letter)
        created = _create_deliveries(session, letter=letter, petition=petition, settings=settings)
    else:
        created = len(
            session.exec(
                select(LetterDelivery.id).where(LetterDelivery.letter_id == letter.id)
            ).all()
        )
    session.flush()
    result = LetterConfirmResult(
        status="already_confirmed" if already else "confirmed",
        petition=petition.slug,
        held=letter.held_reason is not None,
        targets=created,
    )
    return Confirmed(result=result, petition=petition, locale=letter.locale)


def _supersede_older(session: Session, letter: Letter) -> None:
    """A confirmed letter replaces the same person's earlier held or unconfirmed ones."""
    older = session.exec(
        select(Letter).where(
            Letter.petition_id == letter.petition_id,
            Letter.email_normalised == letter.email_normalised,
            col(Letter.id) < letter.id,
            col(Letter.status).in_([LetterStatus.unconfirmed, LetterStatus.confirmed]),
        )
    ).all()
    for other in older:
        pending = session.exec(
            select(LetterDelivery).where(
                LetterDelivery.letter_id == other.id,
                LetterDelivery.state == DeliveryState.held,
                col(LetterDelivery.outbox_id).is_(None),
            )
        ).all()
        if other.status == LetterStatus.confirmed and len(pending) == 0:
            continue  # already on its way: it stands
        other.status = LetterStatus.superseded
        session.add(other)
        for delivery in pending:
            _set_state(session, delivery, DeliveryState.cancelled, "replaced by a newer letter")


def _set_state(
    session: Session, delivery: LetterDelivery, state: DeliveryState, reason: str | None
) -> None:
    delivery.state, delivery.reason, delivery.updated_at = state, reason, utcnow()
    session.add(delivery)


def _create_deliveries(
    session: Session, *, letter: Letter, petition: Petition, settings: Settings
) -> int:
    assert letter.id is not None and petition.id is not None
    active = {t.id: t for t in letter_targets(session, petition=petition)}
    # Lock every target at once, in id order, before counting against their caps: two
    # confirmations naming the same officials in another order cannot deadlock.
    session.exec(
        select(Target.id)
        .where(col(Target.id).in_(letter.target_ids))
        .order_by(col(Target.id))
        .with_for_update()
    ).all()
    created = 0
    for target_id in sorted(letter.target_ids):
        target = active.get(target_id)
        if target is None:
            continue  # retired or removed from the petition since the letter was written
        delivery = LetterDelivery(
            petition_id=petition.id,
            target_id=target_id,
            letter_id=letter.id,
            channel=target.delivery_channel,
            scheduled_on=utcnow().date(),
        )
        if letter.held_reason == HoldReason.near_duplicate:
            delivery.state = DeliveryState.held
            delivery.reason = "near-duplicate: nearly identical to many other letters"
            session.add(delivery)
        else:
            session.add(delivery)
            session.flush()
            schedule(session, delivery=delivery, target=target, settings=settings)
        created += 1
    return created


def schedule(
    session: Session,
    *,
    delivery: LetterDelivery,
    target: Target,
    settings: Settings,
    capped: bool = True,
) -> None:
    """Queue a delivery: e-mail through the outbox, on the first day with room under the
    target's daily cap (a later day holds it until then); postal waits to be printed."""
    session.flush()
    assert delivery.id is not None
    today = utcnow().date()
    day = today
    if capped and delivery.channel == DeliveryChannel.email:
        # One confirmation at a time per target, so two cannot both take the last place.
        session.exec(select(Target.id).where(Target.id == target.id).with_for_update()).first()
        counts: dict[date, int] = dict(
            session.execute(
                select(col(LetterDelivery.scheduled_on), func.count())
                .where(
                    LetterDelivery.target_id == target.id,
                    col(LetterDelivery.scheduled_on) >= today,
                    LetterDelivery.state != DeliveryState.cancelled,
                    col(LetterDelivery.outbox_id).is_not(None),
                )
                .group_by(col(LetterDelivery.scheduled_on))
            ).all()
        )
        while counts.get(day, 0) >= settings.LETTER_DAILY_CAP_PER_TARGET:
            day += timedelta(days=1)
    delivery.scheduled_on = day
    if delivery.channel == DeliveryChannel.postal:
        _set_state(session, delivery, DeliveryState.queued, "to print and post")
        return
    not_before = None
    if day > today:
        not_before = datetime.combine(day, time(), tzinfo=UTC)
        _set_state(
            session,
            delivery,
            DeliveryState.held,
            f"daily-cap: {settings.LETTER_DAILY_CAP_PER_TARGET} letters a day to this "
            f"official; sent on {day.isoformat()}",
        )
    else:
        _set_state(session, delivery, DeliveryState.queued, None)
    delivery.outbox_id = outbox.enqueue(
        session,
        kind="letter",
        payload={"delivery_id": delivery.id},
        dedup_key=f"letter-delivery:{delivery.id}",
        recipient=target.email,
        not_before=not_before,
    )
    session.add(delivery)


# --- organisers: review, print, post ----------------------------------------------------------


def managed_delivery(session: Session, *, user: User, delivery_id: int) -> LetterDelivery:
    """The letter, if this user may manage its petition's campaign; 404 otherwise."""
    delivery = session.get(LetterDelivery, delivery_id)
    petition = session.get(Petition, delivery.petition_id) if delivery else None
    if (
        delivery is None
        or petition is None
        or not auth_service.can_manage(session, user=user, campaign_id=petition.campaign_id)
    ):
        raise ProblemError(404, "letter-not-found", "Letter not found")
    return delivery


def release(
    session: Session, *, actor: User, delivery: LetterDelivery, settings: Settings
) -> LetterDelivery:
    """Send a held letter after all (an organiser's review of a near-duplicate)."""
    if delivery.state != DeliveryState.held or delivery.outbox_id is not None:
        raise ProblemError(409, "letter-not-held", "Only a letter held for review can be released")
    target = session.get(Target, delivery.target_id)
    assert target is not None
    schedule(session, delivery=delivery, target=target, settings=settings)
    _audit(session, actor, delivery, "letter.release")
    return delivery


def discard(session: Session, *, actor: User, delivery: LetterDelivery) -> LetterDelivery:
    if delivery.state != DeliveryState.held or delivery.outbox_id is not None:
        raise ProblemError(409, "letter-not-held", "Only a letter held for review can be discarded")
    _set_state(session, delivery, DeliveryState.cancelled, "discarded by an organiser")
    _audit(session, actor, delivery, "letter.discard")
    return delivery


def mark_posted(session: Session, *, actor: User, delivery: LetterDelivery) -> LetterDelivery:
    if delivery.channel != DeliveryChannel.postal or delivery.state != DeliveryState.queued:
        raise ProblemError(
            409, "letter-not-printable", "Only a queued postal letter can be marked as posted"
        )
    delivery.posted_at = utcnow()
    _set_state(session, delivery, DeliveryState.sent, None)
    _audit(session, actor, delivery, "letter.posted")
    announce_sent(session, delivery=delivery)
    return delivery


def announce_sent(session: Session, *, delivery: LetterDelivery) -> None:
    """`letter.sent` to the campaign's webhooks: the official's mail server accepted the
    letter (called as its e-mail is marked sent), or an organiser marked it posted."""
    petition = session.get(Petition, delivery.petition_id)
    target = session.get(Target, delivery.target_id)
    if petition is None or target is None:
        return
    webhook_service.emit(
        session,
        campaign_id=petition.campaign_id,
        event="letter.sent",
        subject=f"letter:{delivery.id}",
        data=webhook_payloads.letter_sent(
            delivery,
            petition=petition,
            target=target,
            letter=session.get(Letter, delivery.letter_id) if delivery.letter_id else None,
            petition_delivery=(
                session.get(PetitionDelivery, delivery.petition_delivery_id)
                if delivery.petition_delivery_id
                else None
            ),
        ),
    )


def _audit(session: Session, actor: User, delivery: LetterDelivery, action: str) -> None:
    petition = session.get(Petition, delivery.petition_id)
    assert petition is not None
    audit_service.record(
        session,
        actor=actor,
        action=action,
        subject=f"letter_delivery:{delivery.id}",
        campaign_id=petition.campaign_id,
    )


# --- the delivery log -------------------------------------------------------------------------

# The outbox knows best once it has sent, given up on or cancelled the e-mail.
OUTCOME = outbox.outcomes()
STATE = case(
    (OUTCOME.c.status == OutboxStatus.sent, literal(DeliveryState.sent.value)),
    (OUTCOME.c.status == OutboxStatus.failed, literal(DeliveryState.failed.value)),
    (OUTCOME.c.status == OutboxStatus.cancelled, literal(DeliveryState.cancelled.value)),
    else_=col(LetterDelivery.state),
)


def _log_query() -> Any:
    return (
        sa_select(
            LetterDelivery,
            col(Target.key),
            STATE.label("state"),
            OUTCOME.c.last_error,
            OUTCOME.c.attempts,
            OUTCOME.c.sent_at,
            col(PetitionDelivery.number),
        )
        .join(Target, col(Target.id) == col(LetterDelivery.target_id))
        .outerjoin(OUTCOME, OUTCOME.c.id == col(LetterDelivery.outbox_id))
        .outerjoin(
            PetitionDelivery,
            col(PetitionDelivery.id) == col(LetterDelivery.petition_delivery_id),
        )
    )


def _entry(row: Any) -> DeliveryLogEntry:
    delivery, key, state, last_error, attempts, sent_at, number = row
    reason = delivery.reason
    if state in (DeliveryState.failed, DeliveryState.queued) and last_error:
        reason = last_error  # why it failed, or why it is being retried
    elif state == DeliveryState.sent:
        reason = None  # (a daily-cap wait is over once it is sent)
    elif state == DeliveryState.cancelled and reason is None:
        reason = "no longer deliverable: the official was retired or lost their address"
    return DeliveryLogEntry(
        id=delivery.id,
        kind="supporter" if delivery.letter_id else "petition",
        letter_id=delivery.letter_id,
        delivery_number=number,
        target=key,
        channel=delivery.channel,
        state=DeliveryState(state),
        reason=reason,
        attempts=attempts or 0,
        scheduled_on=delivery.scheduled_on,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
        sent_at=sent_at or delivery.posted_at,
    )


def log(
    session: Session,
    *,
    petition_id: int,
    state: DeliveryState | None = None,
    after: int = 0,
    limit: int = 100,
) -> tuple[list[DeliveryLogEntry], int | None]:
    query = _log_query().where(
        col(LetterDelivery.petition_id) == petition_id, col(LetterDelivery.id) > after
    )
    if state is not None:
        query = query.where(STATE == state.value)
    rows = session.execute(query.order_by(col(LetterDelivery.id)).limit(limit + 1)).all()
    entries = [_entry(row) for row in rows[:limit]]
    return entries, (entries[-1].id if len(rows) > limit else None)


def log_entry(session: Session, *, delivery_id: int) -> DeliveryLogEntry:
    row = session.execute(_log_query().where(col(LetterDelivery.id) == delivery_id)).one()
    return _entry(row)


# --- petition delivery ------------------------------------------------------------------------

ANNEX_COLUMNS = {"postcode": "postcode", "confirmed_at": "confirmed_at"}
ANNEX_TYPE = "text/csv; charset=utf-8"


def annex_filename(petition: Petition, number: int) -> str:
    return f"{petition.slug}-signatures-{number}.csv"


def _in_annex(petition_id: int) -> tuple[Any, ...]:
    """The signatures an annex lists: confirmed, and not anonymised."""
    return (
        col(Signature.petition_id) == petition_id,
        col(Signature.status) == SignatureStatus.confirmed,
        col(Signature.anonymised_at).is_(None),
    )


def _annex_rows(
    session: Session, *, petition_id: int, fields: Sequence[str]
) -> Iterator[list[str]]:
    yield ["name", "country", *fields]
    last = 0
    while True:
        rows = session.execute(
            sa_select(
                col(Signature.id),
                col(Signature.name),
                col(Signature.country),
                col(Signature.postcode),
                col(Signature.confirmed_at),
            )
            .where(*_in_annex(petition_id), col(Signature.id) > last)
            .order_by(col(Signature.id))
            .limit(5000)
        ).all()
        if not rows:
            return
        for _id, name, country, postcode, confirmed_at in rows:
            extra = {
                "postcode": neutralise(as_text(postcode or "")),
                "confirmed_at": iso_utc(confirmed_at) if confirmed_at else "",
            }
            yield [neutralise(name), country, *(extra[f] for f in fields)]
        last = rows[-1][0]


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
    targets = letter_targets(session, petition=petition)
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
        schedule(session, delivery=letter, target=target, settings=settings, capped=False)
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
    rows = session.exec(
        select(func.count()).select_from(Signature).where(*_in_annex(petition.id))
    ).one()
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
    found = session.exec(
        select(PetitionDelivery).where(
            PetitionDelivery.petition_id == petition.id, PetitionDelivery.number == number
        )
    ).first()
    if found is None:
        raise ProblemError(404, "delivery-not-found", "No such delivery of this petition")
    return found


def to_admin(session: Session, delivery: PetitionDelivery) -> PetitionDeliveryAdmin:
    rows = session.execute(
        _log_query()
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
        letters=[_entry(row) for row in rows],
    )


def list_deliveries(session: Session, *, petition_id: int) -> list[PetitionDelivery]:
    return list(
        session.exec(
            select(PetitionDelivery)
            .where(PetitionDelivery.petition_id == petition_id)
            .order_by(col(PetitionDelivery.number))
        )
    )


def letters_of(
    session: Session, *, petition_id: int, email_normalised: str
) -> list[tuple[Letter, list[str]]]:
    """An address's letters to a petition's officials, with the officials' names (for the
    supporter's data download)."""
    letters = session.exec(
        select(Letter)
        .where(Letter.petition_id == petition_id, Letter.email_normalised == email_normalised)
        .order_by(col(Letter.id))
    ).all()
    ids = {i for letter in letters for i in letter.target_ids}
    names = dict(
        session.execute(select(Target.id, Target.name).where(col(Target.id).in_(ids))).all()
    )
    return [(letter, [names.get(i, "") for i in letter.target_ids]) for letter in letters]


# --- retention --------------------------------------------------------------------------------


def anonymise_petition(session: Session, *, petition_id: int) -> int:
    """Remove the personal data of a petition's letters (retention: see rights.anonymise_expired)
    and the signers' names in its delivery annexes. The delivery log, counts, hashes and
    manifests stay. Returns how many letters were anonymised."""
    anonymised = (
        session.execute(
            update(Letter)
            .where(col(Letter.petition_id) == petition_id, col(Letter.email) != "")
            .values(
                name="",
                email="",
                email_normalised=literal("anonymised:", String) + cast(col(Letter.id), String),
                city="",
                message="",
                ip_hash=None,
            )
            .returning(col(Letter.id))
            .execution_options(synchronize_session=False)
        )
        .scalars()
        .all()
    )
    session.execute(
        update(PetitionDelivery)
        .where(col(PetitionDelivery.petition_id) == petition_id)
        .values(annex_gzip=b"")
        .execution_options(synchronize_session=False)
    )
    return len(anonymised)
