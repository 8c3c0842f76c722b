"""The embeddable sign form: /embed/petitions/{slug}, for a frame on an organiser's own site.

Only the sites the campaign lists (`embed_origins`, set through the admin API) may frame it:
its pages say so in their Content-Security-Policy (`frame-ancestors`), and carry no
X-Frame-Options (app/main.py). Every other page of Chorus refuses to be framed. Signing goes
through the petition page's own checks (app/signatures/form.py) and double opt-in.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.campaigns import service as campaign_service
from app.core.config import Settings
from app.core.csp import page_policy
from app.core.deps import SessionDep, SettingsDep
from app.core.http import cached_read
from app.core.i18n import country_names, request_locale
from app.core.templating import page_templates
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.sharing import links as share_links
from app.signatures import service as signature_service
from app.signatures.form import SignFormFields, in_own_session, sign_form_fields, submit

router = APIRouter(include_in_schema=False)


def framing_headers(session: Session, settings: Settings, petition: Petition) -> dict[str, str]:
    """The embed's policy: the page's own, framed only by the campaign's listed origins."""
    campaign = campaign_service.get(session, campaign_id=petition.campaign_id)
    return {
        "Content-Security-Policy": page_policy(settings, frame_ancestors=campaign.embed_origins)
    }


def embed_context(
    request: Request, session: Session, petition: Petition, locale: str
) -> dict[str, Any]:
    assert petition.id is not None
    settings: Settings = request.app.state.settings
    count = signature_service.confirmed_count(session, petition_id=petition.id)
    return {
        "locale": locale,
        "petition": petition,
        "text": petition.text(locale),
        "petition_url": share_links.page_url(settings, petition, locale),
        "count": count,
        "goal": petition.goal,
        "percent": min(100, round(100 * count / petition.goal)) if petition.goal else 0,
        "countries": country_names(locale),
        "refusal": petition_service.refusal_reason(petition),
        "form": {},
        "errors": {},
        "captcha_provider": settings.CAPTCHA_PROVIDER,
        "captcha_site_key": settings.CAPTCHA_SITE_KEY,
        "share": share_links.petition_share(settings, petition, locale, count),
    }


@router.get("/embed/petitions/{slug}", response_class=HTMLResponse)
async def embed_page(slug: str, request: Request) -> Response:
    settings: Settings = request.app.state.settings
    ttl = settings.CACHE_SECONDS

    def build(session: Session) -> Response:
        petition = petition_service.get_public(session, slug=slug, cache_seconds=ttl)
        locale = request_locale(
            request, available=petition.locales, default=petition.default_locale
        )
        return page_templates().TemplateResponse(
            request,
            "embed.html",
            embed_context(request, session, petition, locale),
            headers=framing_headers(session, settings, petition),
        )

    return await cached_read(request, ttl, build)


@router.post("/embed/petitions/{slug}/sign", response_class=HTMLResponse)
async def embed_sign(
    slug: str, request: Request, fields: Annotated[SignFormFields, Depends(sign_form_fields)]
) -> Response:
    """The embedded form: the petition page's own path (app/signatures/form.py)."""
    settings = request.app.state.settings

    def load(session: Session) -> tuple[Petition, dict[str, str]]:
        petition = petition_service.get_public(
            session, slug=slug, cache_seconds=settings.CACHE_SECONDS
        )
        return petition, framing_headers(session, settings, petition)

    petition, headers = await run_in_threadpool(in_own_session, request, load)
    outcome = await submit(request, petition=petition, fields=fields)
    if not outcome.errors:
        return RedirectResponse(
            f"/embed/petitions/{petition.slug}/thanks?lang={outcome.locale}",
            status_code=303,
            headers=headers,
        )

    def page(session: Session) -> Response:
        context = embed_context(request, session, petition, outcome.locale)
        context.update(form=outcome.form, errors=outcome.errors)
        return page_templates().TemplateResponse(
            request, "embed.html", context, status_code=422, headers=headers
        )

    return await run_in_threadpool(in_own_session, request, page)


@router.get("/embed/petitions/{slug}/thanks", response_class=HTMLResponse)
def embed_thanks(
    slug: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    petition = petition_service.get_public(session, slug=slug, cache_seconds=settings.CACHE_SECONDS)
    locale = request_locale(request, available=petition.locales, default=petition.default_locale)
    return page_templates().TemplateResponse(
        request,
        "embed_thanks.html",
        embed_context(request, session, petition, locale),
        headers=framing_headers(session, settings, petition),
    )
