"""E-mails to a campaign's organisers, rendered by the outbox worker at send time."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.auth.models import CampaignMember, User
from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.i18n import FALLBACK, SUPPORTED_LOCALES, translate
from app.core.templating import render_email
from app.email.service import EmailMessage, renderer
from app.petitions.models import Petition


@renderer("petition_milestone")
def milestone(session: Session, payload: dict[str, Any], settings: Settings) -> EmailMessage | None:
    """A petition reached 25, 50, 75 or 100 % of its goal: tell one organiser.

    Cancelled when the petition is gone or the person no longer organises its campaign. The
    e-mail is in the campaign's default language (the one its team works in).
    """
    petition = session.get(Petition, payload["petition_id"])
    user = session.get(User, payload["user_id"])
    if petition is None or user is None or not user.is_active or user.id is None:
        return None
    if session.get(CampaignMember, (petition.campaign_id, user.id)) is None:
        return None
    campaign = session.get(Campaign, petition.campaign_id)
    if campaign is None:
        return None
    locale = campaign.default_locale if campaign.default_locale in SUPPORTED_LOCALES else FALLBACK

    def t(key: str, **values: Any) -> str:
        return translate(locale, key, **values)

    percent = int(payload["percent"])
    title = petition.text(locale)["title"]
    names = campaign.translations.get(locale) or campaign.translations.get(
        campaign.default_locale, {}
    )
    text, html = render_email(
        "petition_milestone",
        t=t,
        locale=locale,
        name=user.name,
        title=title,
        campaign=names.get("name", campaign.slug),
        percent=percent,
        count=int(payload["count"]),  # (translate writes numbers the locale's way)
        goal=int(payload["goal"]),
        goal_reached=percent >= 100,
        petition_url=settings.public_url(f"/petitions/{petition.slug}?lang={locale}"),
    )
    subject_key = "email.milestone.subject_goal" if percent >= 100 else "email.milestone.subject"
    return EmailMessage(
        to=user.email,
        to_name=user.name or None,
        subject=t(subject_key, title=title, percent=percent),
        text=text,
        html=html,
        headers={"Content-Language": locale},
    )
