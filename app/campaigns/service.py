"""Campaigns: reading, who may manage them, creating and editing, and petition milestones."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth import service as auth_service
from app.auth.models import CampaignMember, User
from app.campaigns.models import (
    SLUG_PATTERN,
    Campaign,
    CampaignAdmin,
    CampaignCreate,
    CampaignUpdate,
)
from app.core.errors import FieldError, ProblemError
from app.email import outbox
from app.petitions.models import Petition


def get(session: Session, *, campaign_id: int) -> Campaign:
    """A campaign by id (one the caller already knows exists, e.g. its petition's)."""
    campaign = session.get(Campaign, campaign_id)
    assert campaign is not None
    return campaign


def slug_of(session: Session, *, campaign_id: int) -> str:
    campaign = session.get(Campaign, campaign_id)
    assert campaign is not None
    return campaign.slug


def managed(session: Session, *, user: User, slug: str) -> Campaign:
    """The campaign, if this user may manage it; 404 otherwise (its existence is not revealed)."""
    campaign = None
    if SLUG_PATTERN.fullmatch(slug):  # anything else cannot exist (and NUL upsets PostgreSQL)
        campaign = session.exec(select(Campaign).where(Campaign.slug == slug)).first()
    if campaign is None or not auth_service.can_manage(
        session, user=user, campaign_id=campaign.id or 0
    ):
        raise ProblemError(404, "campaign-not-found", "Campaign not found")
    return campaign


# --- shared by the admin services -------------------------------------------------------------


def invalid(field: str, type_: str, message: str) -> ProblemError:
    """A 422 problem about one field, shaped like request validation errors."""
    return ProblemError(
        422,
        "validation",
        "Your request has invalid fields",
        f"{field}: {message}",
        errors=[FieldError(field=field, type=type_, message=message)],
    )


def refuse_nulls(data: BaseModel, fields: tuple[str, ...]) -> None:
    """In a PATCH, null means "clear"; these fields cannot be cleared."""
    for field in fields:
        if field in data.model_fields_set and getattr(data, field) is None:
            raise invalid(field, "null", f"{field} cannot be null")


def merge_translations(
    current: dict[str, Any], changes: dict[str, Any] | None
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Apply a PATCH of translations: given languages are replaced, null removes one.

    Returns the new translations and the languages changed and removed.
    """
    merged = dict(current)
    changed, removed = [], []
    for locale, text in sorted((changes or {}).items()):
        if text is None:
            if locale in merged:
                del merged[locale]
                removed.append(locale)
        elif merged.get(locale) != text:
            merged[locale] = text
            changed.append(locale)
    return merged, changed, removed


def check_default_locale(default_locale: str, translations: dict[str, Any]) -> None:
    if default_locale not in translations:
        raise invalid(
            "default_locale",
            "default_locale_untranslated",
            f"The default language {default_locale!r} needs a translation "
            f"(translations has {', '.join(sorted(translations)) or 'none'})",
        )


def flush_unique(session: Session, instance: Any, conflict: ProblemError) -> None:
    """Add and flush in a savepoint; a unique-constraint race becomes `conflict`."""
    try:
        with session.begin_nested():
            session.add(instance)
            session.flush()
    except IntegrityError:
        raise conflict from None


# --- managing campaigns -----------------------------------------------------------------------


def list_managed(session: Session, *, user: User) -> list[Campaign]:
    """The campaigns this user may manage (every one for admins), by slug."""
    ids = auth_service.accessible_campaign_ids(session, user=user)
    query = select(Campaign).order_by(col(Campaign.slug))
    if ids is not None:
        query = query.where(col(Campaign.id).in_(ids))
    return list(session.exec(query))


def create(session: Session, *, actor: User, data: CampaignCreate) -> Campaign:
    """A new campaign (admins only); 409 if the slug is taken."""
    auth_service.require_admin(actor)
    translations = {loc: text.model_dump() for loc, text in data.translations.items()}
    check_default_locale(data.default_locale, translations)
    conflict = ProblemError(
        409,
        "campaign-exists",
        "A campaign with this slug exists",
        f"Choose another slug than {data.slug!r}.",
    )
    if session.exec(select(Campaign.id).where(Campaign.slug == data.slug)).first() is not None:
        raise conflict
    campaign = Campaign(
        slug=data.slug,
        default_locale=data.default_locale,
        translations=translations,
        currencies=data.currencies,
        embed_origins=data.embed_origins,
    )
    flush_unique(session, campaign, conflict)
    audit_service.record(
        session,
        actor=actor,
        action="campaign.create",
        subject=f"campaign:{campaign.slug}",
        campaign_id=campaign.id,
        details={
            "default_locale": campaign.default_locale,
            "locales": sorted(translations),
            "currencies": campaign.currencies,
            "embed_origins": campaign.embed_origins,
        },
    )
    return campaign


def update(session: Session, *, actor: User, campaign: Campaign, data: CampaignUpdate) -> Campaign:
    """Change what was sent; records the changes in the audit log (nothing if none)."""
    refuse_nulls(data, ("default_locale", "translations", "currencies", "embed_origins"))
    details: dict[str, Any] = {}
    translations, changed, removed = merge_translations(
        campaign.translations,
        {loc: t.model_dump() if t else None for loc, t in (data.translations or {}).items()},
    )
    default_locale = data.default_locale or campaign.default_locale
    check_default_locale(default_locale, translations)
    if default_locale != campaign.default_locale:
        details["default_locale"] = {"from": campaign.default_locale, "to": default_locale}
        campaign.default_locale = default_locale
    if changed or removed:
        details["translations"] = {"changed": changed, "removed": removed}
        campaign.translations = translations
    if data.currencies is not None and data.currencies != campaign.currencies:
        details["currencies"] = {"from": campaign.currencies, "to": data.currencies}
        campaign.currencies = data.currencies
    if data.embed_origins is not None and data.embed_origins != campaign.embed_origins:
        details["embed_origins"] = {"from": campaign.embed_origins, "to": data.embed_origins}
        campaign.embed_origins = data.embed_origins
    if details:
        session.add(campaign)
        session.flush()
        audit_service.record(
            session,
            actor=actor,
            action="campaign.update",
            subject=f"campaign:{campaign.slug}",
            campaign_id=campaign.id,
            details=details,
        )
    return campaign


def to_admin(campaign: Campaign) -> CampaignAdmin:
    rest = sorted(loc for loc in campaign.translations if loc != campaign.default_locale)
    return CampaignAdmin(
        slug=campaign.slug,
        default_locale=campaign.default_locale,
        locales=[campaign.default_locale, *rest],
        translations=campaign.translations,
        currencies=campaign.currencies,
        embed_origins=campaign.embed_origins,
        created_at=campaign.created_at,
    )


# --- milestones -------------------------------------------------------------------------------

MILESTONE_PERCENTS = (25, 50, 75, 100)
# Confirmations on different tally shards do not wait for each other, so under a surge the
# count one of them sees can lag behind by the confirmations still in flight, and a threshold
# can be passed without any of them seeing it. Confirmations that see a count within this many
# signatures of a threshold therefore recount under a lock on the petition row (the others,
# nearly all of them, do nothing more): the last of them sees every confirmation that counts.
MILESTONE_BAND = 100


def milestone_threshold(goal: int, percent: int) -> int:
    """The confirmed count at which a petition reaches `percent` of its goal (rounded up)."""
    return max(1, -(-goal * percent // 100))


def reached_milestone(goal: int, count: int) -> int | None:
    """The highest milestone (percent) a count has reached."""
    reached = [p for p in MILESTONE_PERCENTS if milestone_threshold(goal, p) <= count]
    return max(reached) if reached else None


def organisers(session: Session, *, campaign_id: int) -> list[User]:
    """The active members of a campaign: who hears about its milestones."""
    return list(
        session.exec(
            select(User)
            .join(CampaignMember, col(CampaignMember.user_id) == col(User.id))
            .where(CampaignMember.campaign_id == campaign_id, col(User.is_active).is_(True))
            .order_by(col(User.id))
        )
    )


def check_milestones(session: Session, *, petition: Petition, count: int) -> int | None:
    """Called after a newly confirmed signature brought the petition's count to `count`.

    When the count has just reached 25, 50, 75 or 100 % of the goal (count_before < threshold
    <= count_after, widened by MILESTONE_BAND for confirmations running at the same time), queue
    one e-mail to each organiser of the campaign. Each (milestone, organiser) e-mail has its
    outbox dedup key, so it is queued once whatever the concurrency. When a confirmation passes
    several thresholds at once (tiny goals), only the highest is announced. Returns the
    milestone queued, if any.
    """
    assert petition.id is not None
    goal = petition.goal
    thresholds = [milestone_threshold(goal, p) for p in MILESTONE_PERCENTS]
    if not any(count - MILESTONE_BAND < t <= count + MILESTONE_BAND for t in thresholds):
        return None  # the usual case: nothing more to read
    from app.signatures import service as signature_service  # (it imports this module)

    # FOR NO KEY UPDATE: serialises these few confirmations without conflicting with the key
    # share locks that signing and counting take on the petition row.
    session.execute(
        select(Petition.id).where(col(Petition.id) == petition.id).with_for_update(key_share=True)
    )
    count = signature_service.confirmed_count(session, petition_id=petition.id)
    percent = reached_milestone(goal, count)
    if percent is None or milestone_threshold(goal, percent) <= count - MILESTONE_BAND:
        return None
    prefix = f"milestone:{petition.id}:{percent}"
    keys = {
        f"{prefix}:{user.id}": user
        for user in organisers(session, campaign_id=petition.campaign_id)
    }
    if not keys:
        return None
    queued = outbox.queued_keys(session, list(keys))
    for key, user in keys.items():
        if key not in queued:
            outbox.enqueue(
                session,
                kind="petition_milestone",
                payload={
                    "petition_id": petition.id,
                    "user_id": user.id,
                    "percent": percent,
                    "count": count,
                    "goal": goal,
                },
                dedup_key=key,
                recipient=user.email,
            )
    return percent
