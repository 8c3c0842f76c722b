"""The letter form on the petition page, and the scanner-safe confirmation page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.abuse import service as abuse_service
from app.abuse.service import SigningSource
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import ProblemError, field_errors_from_pydantic
from app.core.i18n import SUPPORTED_LOCALES, error_message, negotiate, request_locale, translate
from app.core.templating import page_templates
from app.letters import supporters
from app.letters.models import LetterCreate
from app.petitions import service as petition_service
from app.petitions.pages import page_locale, petition_context

router = APIRouter(include_in_schema=False)

NO_REFERRER = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


@router.post("/petitions/{slug}/letters", response_class=HTMLResponse)
def letter_form(
    slug: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    city: Annotated[str, Form()] = "",
    country: Annotated[str, Form()] = "",
    message: Annotated[str, Form()] = "",
    targets: Annotated[list[str] | None, Form()] = None,
    locale: Annotated[str, Form()] = "",
    website: Annotated[str, Form()] = "",  # the honeypot: hidden from people, filled by bots
    captcha_response: Annotated[str, Form(alias="cf-turnstile-response")] = "",
    hcaptcha_response: Annotated[str, Form(alias="h-captcha-response")] = "",
) -> Response:
    petition = petition_service.get_public(session, slug=slug)
    chosen = negotiate(
        query=locale[:35],
        accept_language=request.headers.get("accept-language"),
        available=petition.locales,
        default=petition.default_locale,
    )
    form: dict[str, Any] = {
        "name": name,
        "email": email,
        "city": city,
        "country": country,
        "message": message,
        "targets": [t[:60] for t in (targets or [])[:50]],
    }
    errors: dict[str, str] = {}
    data: LetterCreate | None = None
    try:
        data = LetterCreate.model_validate({**form, "locale": chosen})
    except ValidationError as exc:
        for error in field_errors_from_pydantic(exc.errors()):
            field = error.field.split(".")[0]
            type_ = error.type
            if field == "targets" and type_ == "too_short":
                type_ = "targets_missing"
            elif field == "message" and type_ == "string_too_short":
                type_ = "message_too_short"
            errors.setdefault(field, error_message(chosen, type_, error.message))
    held = False
    ip = request.client.host if request.client else None
    if data is not None:
        try:
            abuse_service.check_captcha(
                settings, token=captcha_response or hcaptcha_response or None, ip=ip
            )
        except ProblemError:
            errors["captcha"] = translate(chosen, "errors.captcha_failed")
            data = None
    if data is not None:
        try:
            accepted = supporters.submit(
                session,
                petition=petition,
                data=data,
                locale=chosen,
                settings=settings,
                source=SigningSource(ip=ip, honeypot=bool(website.strip())),
            )
        except ProblemError as exc:
            if exc.errors:
                for error in exc.errors:
                    errors[error.field] = error_message(chosen, error.type, error.message)
            else:
                errors["form"] = exc.title
        else:
            if not accepted.held:
                return RedirectResponse(
                    f"/petitions/{petition.slug}/letter-sent?lang={chosen}", status_code=303
                )
            held = True  # kept, and the supporter is asked to put it in their own words
    context = petition_context(request, session, petition, chosen)
    context.update(letter_form=form, letter_errors=errors, letter_held=held)
    return page_templates().TemplateResponse(
        request, "petition.html", context, status_code=200 if held else 422
    )


@router.get("/petitions/{slug}/letter-sent", response_class=HTMLResponse)
def letter_sent(slug: str, request: Request, session: SessionDep) -> Response:
    petition = petition_service.get_public(session, slug=slug)
    locale = page_locale(request, petition)
    return page_templates().TemplateResponse(
        request,
        "letter_sent.html",
        {
            "locale": locale,
            "locales": petition.locales,
            "petition": petition,
            "text": petition.text(locale),
            "switch_path": f"/petitions/{petition.slug}/letter-sent",
        },
    )


@router.get("/letters/confirm/{token}", response_class=HTMLResponse)
def confirm_page(token: str, request: Request) -> Response:
    # Mail scanners and link previewers follow links: this page sends nothing.
    return page_templates().TemplateResponse(
        request,
        "letter_confirm.html",
        {"locale": request_locale(request), "locales": list(SUPPORTED_LOCALES), "token": token},
        headers=NO_REFERRER,
    )


@router.post("/letters/confirm/{token}", response_class=HTMLResponse)
def confirm_submit(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    locale = request_locale(request)
    try:
        confirmed = supporters.confirm(session, token=token, settings=settings)
    except ProblemError as exc:
        return page_templates().TemplateResponse(
            request,
            "letter_failed.html",
            {"locale": locale, "locales": list(SUPPORTED_LOCALES), "problem": exc.slug},
            status_code=exc.status,
            headers=NO_REFERRER,
        )
    petition = confirmed.petition
    return page_templates().TemplateResponse(
        request,
        "letter_confirmed.html",
        {
            "locale": locale,
            "locales": petition.locales,
            "petition": petition,
            "result": confirmed.result,
            "switch_path": f"/petitions/{petition.slug}",
        },
        headers=NO_REFERRER,
    )
