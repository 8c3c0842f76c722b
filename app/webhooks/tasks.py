"""The outbox kinds of webhooks: the events themselves (delivered by app/webhooks/sender.py, not
by SMTP) and the e-mail that tells organisers Chorus switched a failing endpoint off."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from app.auth.models import CampaignMember, User
from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.i18n import FALLBACK, SUPPORTED_LOCALES, date_time, translate
from app.core.templating import render_email
from app.email.service import EmailMessage, renderer
from app.webhooks import sender
from app.webhooks.models import DisabledReason, WebhookAttempt, WebhookEndpoint
from app.webhooks.service import DISABLED_KIND

__all__ = ["sender", "endpoint_disabled"]


@renderer(DISABLED_KIND)
def endpoint_disabled(
    session: Session, payload: dict[str, Any], settings: Settings
) -> EmailMessage | None:
    """An endpoint failed for WEBHOOK_DISABLE_AFTER_HOURS and was switched off: tell one
    organiser, in their console language (else the campaign's). Cancelled when the endpoint
    is gone or on again, or the person no longer organises the campaign."""
    endpoint = session.get(WebhookEndpoint, payload["endpoint_id"])
    user = session.get(User, payload["user_id"])
    if endpoint is None or endpoint.disabled_reason != DisabledReason.failing:
        return None
    if user is None or not user.is_active or user.id is None:
        return None
    if session.get(CampaignMember, (endpoint.campaign_id, user.id)) is None:
        return None
    campaign = session.get(Campaign, endpoint.campaign_id)
    if campaign is None:
        return None
    locale = next(
        (loc for loc in (user.locale, campaign.default_locale) if loc in SUPPORTED_LOCALES),
        FALLBACK,
    )

    def t(key: str, **values: Any) -> str:
        return translate(locale, key, **values)

    last = session.exec(
        select(WebhookAttempt)
        .where(WebhookAttempt.endpoint_id == endpoint.id)
        .order_by(col(WebhookAttempt.id).desc())
        .limit(1)
    ).first()
    names = campaign.translations.get(locale) or campaign.translations.get(
        campaign.default_locale, {}
    )
    assert endpoint.failing_since is not None and endpoint.disabled_at is not None
    text, html = render_email(
        "webhook_disabled",
        t=t,
        locale=locale,
        name=user.name,
        url=endpoint.url,
        campaign=names.get("name", campaign.slug),
        since=date_time(endpoint.failing_since, locale),
        hours=round(settings.WEBHOOK_DISABLE_AFTER_HOURS),
        last_error=(last.error or "") if last is not None else "",
        enable_url=settings.public_url(f"/admin/campaigns/{campaign.slug}/webhooks/{endpoint.id}"),
    )
    return EmailMessage(
        to=user.email,
        to_name=user.name or None,
        subject=t("email.webhook_disabled.subject", campaign=names.get("name", campaign.slug)),
        text=text,
        html=html,
        headers={"Content-Language": locale},
    )
