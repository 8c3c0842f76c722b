"""The "manage my signature" page that every e-mail to a signer links to.

Mail scanners and link previewers follow links, so GET only shows what Chorus holds; each
action (withdraw, stop updates, download) is a POST form. The token is in the URL, so these
pages are never cached, indexed, or named in a Referer header.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.core.deps import SessionDep, SettingsDep
from app.core.errors import ProblemError
from app.core.i18n import (
    SUPPORTED_LOCALES,
    country_name,
    date_time,
    negotiate,
    request_locale,
)
from app.core.templating import page_templates
from app.petitions.service import PUBLIC_STATUSES
from app.rights import service as rights_service
from app.rights.router import download_headers

router = APIRouter(include_in_schema=False)

PRIVATE = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex", "Cache-Control": "no-store"}
# What the page may say happened after an action (`?done=`); anything else is ignored.
DONE = ("withdrawn", "already_withdrawn", "consent_withdrawn", "consent_already_withdrawn")


def _path(token: str) -> str:
    return f"/signatures/manage/{token}"


def _when(moment: datetime | None, locale: str) -> str | None:
    return date_time(moment, locale) if moment else None


def _failure(request: Request, token: str, exc: ProblemError) -> Response:
    locale = request_locale(request)
    return page_templates().TemplateResponse(
        request,
        "manage_failed.html",
        {
            "locale": locale,
            "locales": list(SUPPORTED_LOCALES),
            "switch_path": _path(token),
            "problem": exc.slug,
        },
        status_code=exc.status,
        headers=PRIVATE,
    )


@router.get("/signatures/manage/{token}", response_class=HTMLResponse)
def manage_page(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    # Changes nothing: mail scanners follow links.
    try:
        managed = rights_service.load(session, token=token, settings=settings)
    except ProblemError as exc:
        return _failure(request, token, exc)
    signature, petition = managed.signature, managed.petition
    signer_locale = (
        signature.locale if signature.locale in petition.translations else petition.default_locale
    )
    locale = negotiate(
        query=request.query_params.get("lang"),
        accept_language=None,  # the signer's language is known: it is the default
        available=petition.locales,
        default=signer_locale,
    )
    done = request.query_params.get("done")
    context: dict[str, Any] = {
        "locale": locale,
        "locales": petition.locales,
        "switch_path": _path(token),
        "token": token,
        "done": done if done in DONE else None,
        "title": petition.text(locale)["title"],
        "petition_url": (
            f"/petitions/{petition.slug}?lang={locale}"
            if petition.status in PUBLIC_STATUSES
            else None
        ),
        "signature": signature,
        "status": str(signature.status),
        "country": country_name(signature.country, locale),
        "created_at": _when(signature.created_at, locale),
        "confirmed_at": _when(signature.confirmed_at, locale),
        "withdrawn_at": _when(signature.withdrawn_at, locale),
        "anonymised_at": _when(signature.anonymised_at, locale),
    }
    return page_templates().TemplateResponse(request, "manage.html", context, headers=PRIVATE)


def _back(token: str, request: Request, done: str) -> Response:
    lang = request.query_params.get("lang", "")
    lang = lang if lang in SUPPORTED_LOCALES else ""
    query = f"?lang={lang}&done={done}" if lang else f"?done={done}"
    return RedirectResponse(_path(token) + query, status_code=303, headers=PRIVATE)


@router.post("/signatures/manage/{token}/withdraw", response_class=HTMLResponse)
def withdraw_submit(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    try:
        result = rights_service.withdraw(session, token=token, settings=settings)
    except ProblemError as exc:
        return _failure(request, token, exc)
    return _back(token, request, "withdrawn" if result.newly_withdrawn else "already_withdrawn")


@router.post("/signatures/manage/{token}/consent/withdraw", response_class=HTMLResponse)
def consent_submit(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    try:
        result = rights_service.withdraw_consent(session, token=token, settings=settings)
    except ProblemError as exc:
        return _failure(request, token, exc)
    return _back(
        token, request, "consent_withdrawn" if result.changed else "consent_already_withdrawn"
    )


@router.post("/signatures/manage/{token}/export")
def export_submit(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    try:
        data = rights_service.export(session, token=token, settings=settings)
    except ProblemError as exc:
        return _failure(request, token, exc)
    return Response(
        data.model_dump_json(indent=2),
        media_type="application/json",
        headers={**PRIVATE, **download_headers(data)},
    )
