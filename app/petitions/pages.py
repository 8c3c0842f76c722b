"""Server-rendered petition pages: they work without JavaScript."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.campaigns import service as campaign_service
from app.core.deps import SessionDep, SettingsDep
from app.core.http import cached_read
from app.core.i18n import SUPPORTED_LOCALES, country_names, request_locale
from app.core.templating import page_templates
from app.letters import templates as letter_templates
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.sharing import links as share_links
from app.signatures import service as signature_service
from app.stats import charts

router = APIRouter(include_in_schema=False)


def page_locale(request: Request, petition: Petition) -> str:
    return request_locale(request, available=petition.locales, default=petition.default_locale)


def petition_context(
    request: Request, session: SessionDep, petition: Petition, locale: str
) -> dict[str, Any]:
    assert petition.id is not None
    count = signature_service.confirmed_count(session, petition_id=petition.id)
    by_country = signature_service.confirmed_by_country(session, petition_id=petition.id)
    settings = request.app.state.settings
    return {
        "request": request,
        "locale": locale,
        "locales": petition.locales,
        "petition": petition,
        "text": petition.text(locale),
        "targets": [  # each official in the page's language
            t.text(locale) for t in petition_service.targets(session, petition_id=petition.id)
        ],
        "count": count,
        "goal": petition.goal,
        "percent": min(100, round(100 * count / petition.goal)) if petition.goal else 0,
        "share": share_links.petition_share(settings, petition, locale, count),
        "time_chart": charts.over_time(session, petition=petition, locale=locale),
        "country_chart": charts.by_country(by_country, locale=locale),
        "countries": country_names(locale),
        "refusal": petition_service.refusal_reason(petition),
        "form": {},
        "errors": {},
        "campaign_slug": campaign_service.slug_of(session, campaign_id=petition.campaign_id),
        "switch_path": f"/petitions/{petition.slug}",
        "captcha_provider": settings.CAPTCHA_PROVIDER,
        "captcha_site_key": settings.CAPTCHA_SITE_KEY,
        **letter_templates.form_context(session, petition=petition, locale=locale),
    }


@router.get("/petitions/{slug}", response_class=HTMLResponse)
async def petition_page(slug: str, request: Request) -> Response:
    ttl = request.app.state.settings.CACHE_SECONDS

    def build(session: Session) -> Response:
        petition = petition_service.get_public(session, slug=slug, cache_seconds=ttl)
        locale = page_locale(request, petition)
        context = petition_context(request, session, petition, locale)
        return page_templates().TemplateResponse(request, "petition.html", context)

    return await cached_read(request, ttl, build)


@router.get("/petitions/{slug}/thanks", response_class=HTMLResponse)
def thanks_page(
    slug: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    petition = petition_service.get_public(session, slug=slug, cache_seconds=settings.CACHE_SECONDS)
    locale = page_locale(request, petition)
    assert petition.id is not None
    count = signature_service.confirmed_count(session, petition_id=petition.id)
    return page_templates().TemplateResponse(
        request,
        "thanks.html",
        {
            "locale": locale,
            "locales": petition.locales,
            "petition": petition,
            "text": petition.text(locale),
            "switch_path": f"/petitions/{petition.slug}/thanks",
            "share": share_links.petition_share(settings, petition, locale, count),
        },
    )


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    locale = request_locale(request)
    petitions = petition_service.list_public(session)
    summaries = petition_service.to_summaries(
        session, petitions=petitions, locale=locale, settings=settings
    )
    return page_templates().TemplateResponse(
        request,
        "home.html",
        {
            "locale": locale,
            "locales": list(SUPPORTED_LOCALES),
            "petitions": summaries,
        },
    )
