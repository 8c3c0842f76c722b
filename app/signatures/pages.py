"""Signing and confirming from the pages: the petition page's sign form, and the
scanner-safe confirmation page (GET shows a button, only the POST confirms)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.abuse.service import SigningSource
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import FieldError, ProblemError, field_errors_from_pydantic
from app.core.i18n import SUPPORTED_LOCALES, negotiate, request_locale, translate
from app.core.templating import page_templates
from app.petitions import service as petition_service
from app.petitions.pages import petition_context
from app.signatures import service as signature_service
from app.signatures.models import SignatureCreate

router = APIRouter(include_in_schema=False)

T = TypeVar("T")
# The form's names for the fields whose API names differ.
FORM_FIELDS = {"captcha_token": "captcha"}


def _in_session(request: Request, work: Callable[[Session], T]) -> T:
    """`work` with a session of its own (run it in the thread pool): the form holds no
    connection while its signature waits for the batch's commit."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        return work(session)


def _show(errors: dict[str, str], found: list[FieldError], locale: str) -> None:
    """Each field's first problem, in the page's language, beside the field."""
    for error in found:
        key = f"errors.{error.type}"
        message = translate(locale, key)
        field = FORM_FIELDS.get(error.field, error.field)
        errors.setdefault(field, message if message != key else error.message)


@router.post("/petitions/{slug}/sign", response_class=HTMLResponse)
async def sign_form(
    slug: str,
    request: Request,
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
    """The petition page's sign form. Once parsed, it signs through the API's path
    (SigningBatcher.sign: the CAPTCHA, the petition's state, the batch's commit) and answers
    after the commit; a problem is shown beside its field on the petition page (422)."""
    settings = request.app.state.settings
    petition = await run_in_threadpool(
        _in_session,
        request,
        lambda session: petition_service.get_public(
            session, slug=slug, cache_seconds=settings.CACHE_SECONDS
        ),
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
    try:
        data = SignatureCreate.model_validate(
            {
                **form,
                "postcode": postcode or None,
                "locale": chosen,
                "captcha_token": captcha_response or hcaptcha_response or None,
            }
        )
    except ValidationError as exc:
        _show(errors, field_errors_from_pydantic(exc.errors()), chosen)
    else:
        try:
            await request.app.state.signing.sign(
                slug=petition.slug,
                data=data,
                accept_language=request.headers.get("accept-language"),
                source=SigningSource(
                    ip=request.client.host if request.client else None,
                    honeypot=bool(website.strip()),
                ),
            )
        except petition_service.Refusal as exc:
            errors["form"] = translate(chosen, f"petition.refusal.{exc.reason}")
        except ProblemError as exc:
            if not exc.errors:  # not about a field (the petition was deleted meanwhile, ...)
                raise
            _show(errors, exc.errors, chosen)
        else:
            return RedirectResponse(
                f"/petitions/{petition.slug}/thanks?lang={chosen}", status_code=303
            )

    def page(session: Session) -> Response:
        context = petition_context(request, session, petition, chosen)
        context.update(form=form, errors=errors)
        return page_templates().TemplateResponse(request, "petition.html", context, status_code=422)

    return await run_in_threadpool(_in_session, request, page)


@router.get("/signatures/confirm/{token}", response_class=HTMLResponse)
def confirm_page(token: str, request: Request) -> Response:
    # Mail scanners and link previewers follow links: this page changes nothing.
    return page_templates().TemplateResponse(
        request,
        "confirm.html",
        {
            "locale": request_locale(request),
            "locales": list(SUPPORTED_LOCALES),
            "token": token,
        },
        headers={"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"},
    )


@router.post("/signatures/confirm/{token}", response_class=HTMLResponse)
def confirm_submit(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    locale = request_locale(request)
    try:
        result = signature_service.confirm(session, token=token, settings=settings)
    except ProblemError as exc:
        return page_templates().TemplateResponse(
            request,
            "confirm_failed.html",
            {
                "locale": locale,
                "locales": list(SUPPORTED_LOCALES),
                "problem": exc.slug,
            },
            status_code=exc.status,
            headers={"Referrer-Policy": "no-referrer"},
        )
    petition = result.petition
    locale = locale if locale in petition.translations else petition.default_locale
    return page_templates().TemplateResponse(
        request,
        "confirmed.html",
        {
            "locale": locale,
            "locales": petition.locales,
            "petition": petition,
            "text": petition.text(locale),
            "count": result.signature_count,
            "newly_confirmed": result.newly_confirmed,
            "switch_path": f"/petitions/{petition.slug}",
        },
        headers={"Referrer-Policy": "no-referrer"},
    )
