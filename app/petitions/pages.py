"""Server-rendered petition pages: they work without JavaScript."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session

from app.abuse import service as abuse_service
from app.abuse.service import SigningSource
from app.campaigns import service as campaign_service
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import ProblemError, field_errors_from_pydantic
from app.core.http import cached_read
from app.core.i18n import SUPPORTED_LOCALES, country_names, negotiate, request_locale, translate
from app.core.templating import page_templates
from app.letters import templates as letter_templates
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.signatures import service as signature_service
from app.signatures.models import SignatureCreate

router = APIRouter(include_in_schema=False)


def page_locale(request: Request, petition: Petition) -> str:
    return request_locale(request, available=petition.locales, default=petition.default_locale)


def petition_context(
    request: Request, session: SessionDep, petition: Petition, locale: str
) -> dict[str, Any]:
    assert petition.id is not None
    count = signature_service.confirmed_count(session, petition_id=petition.id)
    countries = dict(country_names(locale))
    by_country = signature_service.confirmed_by_country(session, petition_id=petition.id)
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
        "top_countries": [(countries.get(c.country, c.country), c.count) for c in by_country[:10]],
        "countries": country_names(locale),
        "refusal": petition_service.refusal_reason(petition),
        "form": {},
        "errors": {},
        "campaign_slug": campaign_service.slug_of(session, campaign_id=petition.campaign_id),
        "switch_path": f"/petitions/{petition.slug}",
        "captcha_provider": request.app.state.settings.CAPTCHA_PROVIDER,
        "captcha_site_key": request.app.state.settings.CAPTCHA_SITE_KEY,
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


@router.post("/petitions/{slug}/sign", response_class=HTMLResponse)
def sign_form(
    slug: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    country: Annotated[str, Form()] = "",
    postcode: Annotated[str, Form()] = "",
    consent_updates: Annotated[str, Form()] = "",
    locale: Annotated[str, Form()] = "",
    website: Annotated[str, Form()] = "",  # the honeypot: hidden from people, filled by bots
    captcha_response: Annotated[str, Form(alias="cf-turnstile-response")] = "",
    hcaptcha_response: Annotated[str, Form(alias="h-captcha-response")] = "",
) -> Response:
    petition = petition_service.get_public(
        session, slug=slug, cache_seconds=request.app.state.settings.CACHE_SECONDS
    )
    chosen = negotiate(
        query=locale[:35],
        accept_language=request.headers.get("accept-language"),
        available=petition.locales,
        default=petition.default_locale,
    )
    form = {
        "name": name,
        "email": email,
        "country": country,
        "postcode": postcode,
        "consent_updates": bool(consent_updates),
    }
    errors: dict[str, str] = {}
    data: SignatureCreate | None = None
    try:
        data = SignatureCreate.model_validate(
            {**form, "postcode": postcode or None, "locale": chosen}
        )
    except ValidationError as exc:
        for error in field_errors_from_pydantic(exc.errors()):
            key = f"errors.{error.type}"
            message = translate(chosen, key)
            errors.setdefault(error.field, message if message != key else error.message)
    refusal = petition_service.refusal_reason(petition)
    if refusal is not None:
        errors["form"] = translate(chosen, f"petition.refusal.{refusal}")
    ip = request.client.host if request.client else None
    if not errors:
        try:
            abuse_service.check_captcha(
                settings, token=captcha_response or hcaptcha_response or None, ip=ip
            )
        except ProblemError:
            errors["captcha"] = translate(chosen, "errors.captcha_failed")
    if errors or data is None:
        context = petition_context(request, session, petition, chosen)
        context.update(form=form, errors=errors)
        return page_templates().TemplateResponse(request, "petition.html", context, status_code=422)
    signature_service.sign(
        session,
        petition=petition,
        data=data,
        locale=chosen,
        settings=settings,
        source=SigningSource(ip=ip, honeypot=bool(website.strip())),
    )
    return RedirectResponse(f"/petitions/{petition.slug}/thanks?lang={chosen}", status_code=303)


@router.get("/petitions/{slug}/thanks", response_class=HTMLResponse)
def thanks_page(slug: str, request: Request, session: SessionDep) -> Response:
    petition = petition_service.get_public(
        session, slug=slug, cache_seconds=request.app.state.settings.CACHE_SECONDS
    )
    locale = page_locale(request, petition)
    return page_templates().TemplateResponse(
        request,
        "thanks.html",
        {
            "locale": locale,
            "locales": petition.locales,
            "petition": petition,
            "text": petition.text(locale),
            "switch_path": f"/petitions/{petition.slug}/thanks",
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
