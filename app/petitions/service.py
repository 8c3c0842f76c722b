"""Reading petitions: lookup, availability, language, and their public shape."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth import service as auth_service
from app.auth.models import User
from app.campaigns.models import Campaign
from app.core import cache, edits
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import ProblemError, field_problem
from app.petitions.models import (
    Petition,
    PetitionAdmin,
    PetitionAdminSummary,
    PetitionCreate,
    PetitionPublic,
    PetitionStatus,
    PetitionSummary,
    PetitionTarget,
    PetitionUpdate,
    TargetPublic,
)
from app.signatures import service as signature_service
from app.targets import service as target_service
from app.targets.models import DeliveryChannel, Target

PUBLIC_STATUSES = (PetitionStatus.open, PetitionStatus.closed)
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")


def get_public(session: Session, *, slug: str, cache_seconds: float = 0) -> Petition:
    """The petition with this slug, if the public may see it (drafts are not public).

    With `cache_seconds`, a server process reuses the petition it read for that long (see
    app/core/cache.py); the object is then detached and must only be read, never changed.
    """

    def load() -> Petition | None:
        found = session.exec(select(Petition).where(Petition.slug == slug)).first()
        if found is not None and cache_seconds > 0:
            session.expunge(found)
        return found

    petition = None
    if SLUG_RE.fullmatch(slug):  # anything else cannot exist (and NUL upsets PostgreSQL)
        petition = cache.cached(("petition", slug), cache_seconds, load)
    if petition is None or petition.status not in PUBLIC_STATUSES:
        raise ProblemError(
            404,
            "petition-not-found",
            "Petition not found",
            f"There is no open or closed petition called {slug!r}.",
        )
    return petition


def list_public(session: Session) -> list[Petition]:
    """Open and closed petitions, newest first."""
    return list(
        session.exec(
            select(Petition)
            .where(col(Petition.status).in_(PUBLIC_STATUSES))
            .order_by(col(Petition.created_at).desc(), col(Petition.id).desc())
        )
    )


def refusal_reason(petition: Petition, *, now: datetime | None = None) -> str | None:
    """Why the petition does not take signatures now (None when it does)."""
    now = now or utcnow()
    if petition.status == PetitionStatus.draft:
        return "draft"
    if petition.status in (PetitionStatus.closed, PetitionStatus.archived):
        return "closed"
    if petition.signing_paused:
        return "paused"
    if petition.opens_at and now < petition.opens_at:
        return "not_open_yet"
    if petition.closes_at and now >= petition.closes_at:
        return "closed"
    return None


class Refusal(ProblemError):
    """A 409 problem: the petition does not take signatures now; `reason` is refusal_reason's
    (pages show it in the reader's language)."""

    def __init__(self, reason: str, slug: str, title: str, detail: str | None = None) -> None:
        super().__init__(409, slug, title, detail)
        self.reason = reason


def ensure_accepting(petition: Petition) -> None:
    """Raise a Refusal (a 409 problem) if the petition does not take signatures now."""
    reason = refusal_reason(petition)
    if reason == "paused":
        raise Refusal(
            reason,
            "petition-paused",
            "This petition is not taking signatures now",
            "Signing is paused for the moment. Please try again later.",
        )
    if reason == "not_open_yet":
        raise Refusal(reason, "petition-not-open", "This petition is not open for signing yet")
    if reason is not None:
        raise Refusal(reason, "petition-closed", "This petition is closed to new signatures")


def targets(session: Session, *, petition_id: int) -> list[Target]:
    """The officials the petition is addressed to, in the organiser's order, retired excluded."""
    rows = session.exec(
        select(Target)
        .join(PetitionTarget, col(PetitionTarget.target_id) == col(Target.id))
        .where(PetitionTarget.petition_id == petition_id, col(Target.retired_at).is_(None))
        .order_by(col(PetitionTarget.position), col(Target.id))
    )
    return list(rows)


def letter_targets(session: Session, *, petition: Petition) -> list[Target]:
    """The petition's targets a letter can reach: by e-mail or post, with the address on file."""
    assert petition.id is not None
    return [
        t
        for t in targets(session, petition_id=petition.id)
        if (t.delivery_channel == DeliveryChannel.email and t.email)
        or (t.delivery_channel == DeliveryChannel.postal and t.postal_address)
    ]


def page_url(settings: Settings, petition: Petition, locale: str | None = None) -> str:
    suffix = f"?lang={locale}" if locale and locale != petition.default_locale else ""
    return settings.public_url(f"/petitions/{petition.slug}{suffix}")


def to_public(
    session: Session, *, petition: Petition, locale: str, settings: Settings, campaign_slug: str
) -> PetitionPublic:
    text = petition.text(locale)
    assert petition.id is not None
    chosen = locale if locale in petition.translations else petition.default_locale
    return PetitionPublic(
        slug=petition.slug,
        campaign=campaign_slug,
        status=petition.status,
        locale=chosen,
        locales=petition.locales,
        title=text["title"],
        summary=text["summary"],
        body=text["body"],
        goal=petition.goal,
        signature_count=signature_service.confirmed_count(session, petition_id=petition.id),
        signatures_by_country=signature_service.confirmed_by_country(
            session, petition_id=petition.id
        ),
        opens_at=petition.opens_at,
        closes_at=petition.closes_at,
        url=page_url(settings, petition),
        targets=[
            TargetPublic(**t.text(chosen), country=t.country)
            for t in targets(session, petition_id=petition.id)
        ],
    )


def to_summaries(
    session: Session, *, petitions: list[Petition], locale: str | None, settings: Settings
) -> list[PetitionSummary]:
    counts = signature_service.confirmed_counts(
        session, petition_ids=[p.id for p in petitions if p.id is not None]
    )
    out = []
    for petition in petitions:
        chosen = locale if locale in petition.translations else petition.default_locale
        text = petition.text(chosen)
        out.append(
            PetitionSummary(
                slug=petition.slug,
                status=petition.status,
                locale=chosen,
                title=text["title"],
                summary=text["summary"],
                goal=petition.goal,
                signature_count=counts.get(petition.id or 0, 0),
                url=page_url(settings, petition),
            )
        )
    return out


def managed(session: Session, *, user: User, slug: str) -> Petition:
    """The petition (any status), if this user may manage its campaign; 404 otherwise."""
    petition = None
    if SLUG_RE.fullmatch(slug):
        petition = session.exec(select(Petition).where(Petition.slug == slug)).first()
    if petition is None or not auth_service.can_manage(
        session, user=user, campaign_id=petition.campaign_id
    ):
        raise ProblemError(404, "petition-not-found", "Petition not found")
    return petition


# --- managing petitions (the admin API) -------------------------------------------------------

# Which status a petition may move to from each status. closed -> open reopens it.
ALLOWED_TRANSITIONS: dict[PetitionStatus, tuple[PetitionStatus, ...]] = {
    PetitionStatus.draft: (PetitionStatus.open,),
    PetitionStatus.open: (PetitionStatus.closed,),
    PetitionStatus.closed: (PetitionStatus.archived, PetitionStatus.open),
    PetitionStatus.archived: (),
}


def list_for_campaign(session: Session, *, campaign_id: int) -> list[Petition]:
    """Every petition of a campaign, whatever its status, newest first."""
    return list(
        session.exec(
            select(Petition)
            .where(Petition.campaign_id == campaign_id)
            .order_by(col(Petition.created_at).desc(), col(Petition.id).desc())
        )
    )


def page_in_campaigns(
    session: Session, *, campaign_ids: list[int] | None, offset: int, limit: int
) -> tuple[list[Petition], int]:
    """A page of the petitions (any status) of these campaigns (None: all), oldest first, and
    how many there are in all."""
    query = select(Petition)
    if campaign_ids is not None:
        query = query.where(col(Petition.campaign_id).in_(campaign_ids))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    page = session.exec(query.order_by(col(Petition.id)).offset(offset).limit(limit))
    return list(page), total


def _check_dates(opens_at: datetime | None, closes_at: datetime | None) -> None:
    if opens_at is not None and closes_at is not None and closes_at <= opens_at:
        raise field_problem(
            "closes_at", "closes_before_opening", "closes_at must be later than opens_at"
        )


def create(session: Session, *, actor: User, campaign: Campaign, data: PetitionCreate) -> Petition:
    """A new draft petition in the campaign; 409 if the slug is taken (slugs are global)."""
    assert campaign.id is not None
    translations = {loc: text.model_dump() for loc, text in data.translations.items()}
    edits.check_default_locale(data.default_locale, translations)
    _check_dates(data.opens_at, data.closes_at)
    conflict = ProblemError(
        409,
        "petition-exists",
        "A petition with this slug exists",
        f"Choose another slug than {data.slug!r}.",
    )
    if session.exec(select(Petition.id).where(Petition.slug == data.slug)).first() is not None:
        raise conflict
    petition = Petition(
        campaign_id=campaign.id,
        slug=data.slug,
        status=PetitionStatus.draft,
        goal=data.goal,
        default_locale=data.default_locale,
        translations=translations,
        opens_at=data.opens_at,
        closes_at=data.closes_at,
    )
    edits.flush_unique(session, petition, conflict)
    audit_service.record(
        session,
        actor=actor,
        action="petition.create",
        subject=f"petition:{petition.slug}",
        campaign_id=campaign.id,
        details={"goal": petition.goal, "locales": petition.locales, "status": petition.status},
    )
    return petition


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def update(session: Session, *, actor: User, petition: Petition, data: PetitionUpdate) -> Petition:
    """Change the fields sent (any status); records what changed in the audit log."""
    edits.refuse_nulls(data, ("goal", "default_locale", "translations"))
    sent = data.model_fields_set
    details: dict[str, Any] = {}
    translations, changed, removed = edits.merge_translations(
        petition.translations,
        {loc: t.model_dump() if t else None for loc, t in (data.translations or {}).items()},
    )
    default_locale = data.default_locale or petition.default_locale
    edits.check_default_locale(default_locale, translations)
    opens_at = data.opens_at if "opens_at" in sent else petition.opens_at
    closes_at = data.closes_at if "closes_at" in sent else petition.closes_at
    _check_dates(opens_at, closes_at)

    if data.goal is not None and data.goal != petition.goal:
        details["goal"] = {"from": petition.goal, "to": data.goal}
        petition.goal = data.goal
    if default_locale != petition.default_locale:
        details["default_locale"] = {"from": petition.default_locale, "to": default_locale}
        petition.default_locale = default_locale
    if changed or removed:
        details["translations"] = {"changed": changed, "removed": removed}
        petition.translations = translations
    if opens_at != petition.opens_at:
        details["opens_at"] = {"from": _iso(petition.opens_at), "to": _iso(opens_at)}
        petition.opens_at = opens_at
    if closes_at != petition.closes_at:
        details["closes_at"] = {"from": _iso(petition.closes_at), "to": _iso(closes_at)}
        petition.closes_at = closes_at
    if details:
        petition.updated_at = utcnow()
        session.add(petition)
        session.flush()
        audit_service.record(
            session,
            actor=actor,
            action="petition.update",
            subject=f"petition:{petition.slug}",
            campaign_id=petition.campaign_id,
            details=details,
        )
    return petition


def change_status(
    session: Session, *, actor: User, petition: Petition, status: PetitionStatus
) -> Petition:
    """Move the petition along its lifecycle; 409 naming the allowed moves otherwise.

    Closing sets `closed_at` (the retention period starts); reopening clears it.
    """
    # Lock the row so two simultaneous changes cannot both start from the same status.
    session.execute(
        select(Petition.id).where(col(Petition.id) == petition.id).with_for_update(key_share=True)
    )
    session.refresh(petition)
    current = petition.status
    allowed = ALLOWED_TRANSITIONS[current]
    if status not in allowed:
        moves = ", ".join(allowed) if allowed else "none (archived is final)"
        raise ProblemError(
            409,
            "status-transition",
            "This status change is not allowed",
            f"A {current} petition cannot become {status}; allowed: {moves}.",
        )
    now = utcnow()
    petition.status = status
    if status == PetitionStatus.closed:
        petition.closed_at = now
    elif status == PetitionStatus.open:
        petition.closed_at = None
    petition.updated_at = now
    session.add(petition)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="petition.status",
        subject=f"petition:{petition.slug}",
        campaign_id=petition.campaign_id,
        details={"from": current, "to": status},
    )
    return petition


def set_signing_paused(
    session: Session, *, actor: User, petition: Petition, paused: bool
) -> Petition:
    """The emergency switch: stop (or resume) taking signatures without closing the petition."""
    before = petition.signing_paused
    petition.signing_paused = paused
    session.add(petition)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="petition.signing",
        subject=f"petition:{petition.slug}",
        campaign_id=petition.campaign_id,
        details={"from": "paused" if before else "open", "to": "paused" if paused else "open"},
    )
    return petition


def set_targets(
    session: Session, *, actor: User, petition: Petition, target_ids: list[int]
) -> list[Target]:
    """Address the petition to exactly these targets, in this order.

    Each must be a current (not retired) target of the petition's campaign, named once.
    """
    assert petition.id is not None
    if len(set(target_ids)) != len(target_ids):
        raise field_problem("target_ids", "target_duplicate", "Name each target once")
    found = {
        t.id: t
        for t in session.exec(
            select(Target).where(
                col(Target.id).in_(target_ids), Target.campaign_id == petition.campaign_id
            )
        )
    }
    unknown = [i for i in target_ids if i not in found]
    if unknown:
        raise field_problem(
            "target_ids",
            "target_unknown",
            f"No target {', '.join(map(str, unknown))} in this petition's campaign",
        )
    retired = [i for i in target_ids if found[i].retired_at is not None]
    if retired:
        raise field_problem(
            "target_ids", "target_retired", f"Target {', '.join(map(str, retired))} is retired"
        )
    before = [
        row.target_id
        for row in session.exec(
            select(PetitionTarget)
            .where(PetitionTarget.petition_id == petition.id)
            .order_by(col(PetitionTarget.position), col(PetitionTarget.target_id))
        )
    ]
    session.execute(delete(PetitionTarget).where(col(PetitionTarget.petition_id) == petition.id))
    for position, target_id in enumerate(target_ids):
        session.add(PetitionTarget(petition_id=petition.id, target_id=target_id, position=position))
    petition.updated_at = utcnow()
    session.add(petition)
    session.flush()
    if before != target_ids:
        audit_service.record(
            session,
            actor=actor,
            action="petition.targets",
            subject=f"petition:{petition.slug}",
            campaign_id=petition.campaign_id,
            details={
                "from": before,
                "to": target_ids,
                "keys": [found[i].key for i in target_ids],
            },
        )
    return [found[i] for i in target_ids]


def to_admin(
    session: Session, *, petition: Petition, settings: Settings, campaign_slug: str
) -> PetitionAdmin:
    assert petition.id is not None
    return PetitionAdmin(
        slug=petition.slug,
        campaign=campaign_slug,
        status=petition.status,
        goal=petition.goal,
        default_locale=petition.default_locale,
        locales=petition.locales,
        translations=petition.translations,
        signature_count=signature_service.confirmed_count(session, petition_id=petition.id),
        opens_at=petition.opens_at,
        closes_at=petition.closes_at,
        closed_at=petition.closed_at,
        created_at=petition.created_at,
        updated_at=petition.updated_at,
        url=page_url(settings, petition),
        targets=target_service.to_admin_list(session, targets(session, petition_id=petition.id)),
    )


def to_admin_summaries(
    session: Session, *, petitions: list[Petition], settings: Settings, campaign_slug: str
) -> list[PetitionAdminSummary]:
    counts = signature_service.confirmed_counts(
        session, petition_ids=[p.id for p in petitions if p.id is not None]
    )
    return [
        PetitionAdminSummary(
            slug=p.slug,
            campaign=campaign_slug,
            status=p.status,
            goal=p.goal,
            default_locale=p.default_locale,
            locales=p.locales,
            title=p.text(p.default_locale)["title"],
            signature_count=counts.get(p.id or 0, 0),
            opens_at=p.opens_at,
            closes_at=p.closes_at,
            closed_at=p.closed_at,
            created_at=p.created_at,
            updated_at=p.updated_at,
            url=page_url(settings, p),
        )
        for p in petitions
    ]
