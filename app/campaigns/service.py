"""Campaigns: reading, who may manage them, creating and editing, and who organises them."""

from __future__ import annotations

from typing import Any

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
from app.core.edits import check_default_locale, flush_unique, merge_translations, refuse_nulls
from app.core.errors import ProblemError


def get(session: Session, *, campaign_id: int) -> Campaign:
    """A campaign by id (one the caller already knows exists, e.g. its petition's)."""
    campaign = session.get(Campaign, campaign_id)
    assert campaign is not None
    return campaign


def slug_of(session: Session, *, campaign_id: int) -> str:
    """A campaign's slug (one the caller knows exists), without loading the campaign: each
    webhook event asks for it."""
    return str(
        session.execute(select(Campaign.slug).where(Campaign.id == campaign_id)).scalar_one()
    )


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


# --- organisers -------------------------------------------------------------------------------


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
