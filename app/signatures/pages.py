"""The scanner-safe confirmation page: GET shows a button, only the POST confirms."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.core.deps import SessionDep, SettingsDep
from app.core.errors import ProblemError
from app.core.i18n import SUPPORTED_LOCALES, request_locale
from app.core.templating import page_templates
from app.sharing import links as share_links
from app.signatures import service as signature_service

router = APIRouter(include_in_schema=False)


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
