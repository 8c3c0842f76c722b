"""Signing and confirming from the pages: the petition page's sign form, and the
scanner-safe confirmation page (GET shows a button, only the POST confirms)."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.core.deps import SessionDep, SettingsDep
from app.core.errors import ProblemError
from app.core.i18n import SUPPORTED_LOCALES, request_locale
from app.core.templating import page_templates
from app.petitions import service as petition_service
from app.petitions.pages import petition_context
from app.sharing import links as share_links
from app.signatures import service as signature_service
from app.signatures.form import SignFormFields, in_own_session, sign_form_fields, submit

router = APIRouter(include_in_schema=False)

T = TypeVar("T")


@router.post("/petitions/{slug}/sign", response_class=HTMLResponse)
async def sign_form(
    slug: str, request: Request, fields: Annotated[SignFormFields, Depends(sign_form_fields)]
) -> Response:
    """The petition page's sign form (app/signatures/form.py); a problem is shown beside its
    field on the petition page (422)."""
    settings = request.app.state.settings
    petition = await run_in_threadpool(
        in_own_session,
        request,
        lambda session: petition_service.get_public(
            session, slug=slug, cache_seconds=settings.CACHE_SECONDS
        ),
    )
    outcome = await submit(request, petition=petition, fields=fields)
    if not outcome.errors:
        return RedirectResponse(
            f"/petitions/{petition.slug}/thanks?lang={outcome.locale}", status_code=303
        )

    def page(session: Session) -> Response:
        context = petition_context(request, session, petition, outcome.locale)
        context.update(form=outcome.form, errors=outcome.errors)
        return page_templates().TemplateResponse(request, "petition.html", context, status_code=422)

    return await run_in_threadpool(in_own_session, request, page)


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
            "share": share_links.petition_share(settings, petition, locale, result.signature_count),
        },
        headers={"Referrer-Policy": "no-referrer"},
    )
