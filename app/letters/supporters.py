"""Supporters' letters: writing one, confirming it, the older ones it replaces, reading them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.abuse import service as abuse_service
from app.abuse.service import SigningSource
from app.core import clientip
from app.core.addresses import normalise_email
from app.core.config import Settings
from app.core.db import dialect_insert, utcnow
from app.core.errors import ProblemError, field_problem
from app.core.tokens import make_token, read_link
from app.email import outbox
from app.letters import duplicates, scheduling, templates
from app.letters.models import (
    DeliveryState,
    HoldReason,
    Letter,
    LetterAccepted,
    LetterBand,
    LetterConfirmResult,
    LetterCreate,
    LetterDelivery,
    LetterStatus,
)
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.targets.models import Target

logger = logging.getLogger(__name__)

CONFIRM_PURPOSE = "confirm-letter"


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
    template = templates.supporter_template(session, petition=petition, locale=locale)
    if template is None:
        raise ProblemError(409, "letters-closed", "This petition takes no letters")
    available = {t.key: t for t in petition_service.letter_targets(session, petition=petition)}
    unknown = [key for key in data.targets if key not in available]
    if unknown:
        raise field_problem(
            "targets",
            "target_unknown",
            f"Not among this petition's officials: {', '.join(unknown)}",
        )
    sig = duplicates.signature(data.message)
    similar = duplicates.similar_count(
        session, campaign_id=petition.campaign_id, sig=sig, settings=settings
    )
    held = similar >= settings.LETTER_DUPLICATE_LIMIT
    email_normalised = normalise_email(data.email)
    ip_digests = clientip.ip_hashes(settings, source.ip) if source.ip else ()
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
                for band in set(duplicates.bands(sig))
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
    """The token in a letter's confirmation link."""
    ttl = settings.CONFIRMATION_TOKEN_TTL_HOURS * 3600
    return make_token(settings, purpose=CONFIRM_PURPOSE, subject=letter_id, ttl_seconds=ttl)


@dataclass
class Confirmed:
    result: LetterConfirmResult
    petition: Petition
    locale: str


def confirm(session: Session, *, token: str, settings: Settings) -> Confirmed:
    """Confirm a letter from its link: its deliveries are created and scheduled. Idempotent."""
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
            scheduling.set_state(
                session, delivery, DeliveryState.cancelled, "replaced by a newer letter"
            )


def _create_deliveries(
    session: Session, *, letter: Letter, petition: Petition, settings: Settings
) -> int:
    assert letter.id is not None and petition.id is not None
    active = {t.id: t for t in petition_service.letter_targets(session, petition=petition)}
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
            scheduling.schedule(session, delivery=delivery, target=target, settings=settings)
        created += 1
    return created


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
