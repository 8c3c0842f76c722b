"""A campaign's donations in the console: money received per currency and the latest gifts
with their states, read from the donations service (amounts in each currency's own decimals,
written the reader's way)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.campaigns import service as campaign_service
from app.console import service as console_service
from app.console.rendering import ConsoleRoute, render
from app.console.session import ConsoleDep
from app.core.deps import SessionDep, SettingsDep
from app.donations import service as donation_service

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

RECENT = 50


@router.get("/campaigns/{slug}/donations")
def donations_page(
    slug: str, request: Request, console: ConsoleDep, session: SessionDep, settings: SettingsDep
) -> Response:
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    assert campaign.id is not None
    return render(
        request,
        console,
        "donations.html",
        {
            "campaign_slug": campaign.slug,
            "campaign_name": console_service.campaign_name(campaign, console.locale),
            "currencies": campaign.currencies,
            "configured": donation_service.donations_configured(settings),
            "totals": donation_service.totals(session, campaign_id=campaign.id),
            "gifts": donation_service.recent(session, campaign_id=campaign.id, limit=RECENT),
            "limit": RECENT,
            "nav": "dashboard",
        },
    )
