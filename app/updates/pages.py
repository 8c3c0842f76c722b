"""The unsubscribe page of campaign updates.

GET shows a button and changes nothing (mail scanners follow links); POST unsubscribes. The POST
is also the RFC 8058 one-click unsubscribe that mail programs send, with the form body
`List-Unsubscribe=One-Click`, to the address in an update's List-Unsubscribe header: it needs
no cookie, no page and no redirect, and gets a 200.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.core.config import Settings
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import ProblemError
from app.core.i18n import SUPPORTED_LOCALES, negotiate, request_locale
from app.core.templating import page_templates
from app.petitions.models import Petition
from app.rights.service import manage_url
from app.signatures.models import Signature
from app.updates import service as update_service

router = APIRouter(include_in_schema=False)

HEADERS = {
    "Referrer-Policy": "no-referrer",  # the token is in the address
    "X-Robots-Tag": "noindex",
    "Cache-Control": "no-store",
}


def _locale(request: Request, signature: Signature | None) -> str:
    """`?lang=` first, then the signer's language, then Accept-Language."""
    if signature is not None:
        return negotiate(
            query=request.query_params.get("lang"),
            accept_language=None,
            available=SUPPORTED_LOCALES,
            default=signature.locale,
        )
    return request_locale(request)


def _page(
    request: Request, template: str, token: str, locale: str, status_code: int = 200, **extra: Any
) -> Response:
    return page_templates().TemplateResponse(
        request,
        template,
        {
            "locale": locale,
            "locales": list(SUPPORTED_LOCALES),
            "token": token,
            "switch_path": f"/unsubscribe/{token}",
            **extra,
        },
        status_code=status_code,
        headers=HEADERS,
    )


def _failed(request: Request, token: str, exc: ProblemError) -> Response:
    return _page(
        request,
        "unsubscribe_failed.html",
        token,
        _locale(request, None),
        status_code=exc.status,
        problem=exc.slug,
    )


def _done(
    request: Request,
    token: str,
    *,
    session: Session,
    settings: Settings,
    signature: Signature,
    already: bool,
) -> Response:
    assert signature.id is not None
    locale = _locale(request, signature)
    petition = session.get(Petition, signature.petition_id)
    assert petition is not None
    return _page(
        request,
        "unsubscribe_done.html",
        token,
        locale,
        already=already,
        title=petition.text(locale)["title"],
        petition_slug=petition.slug,
        manage_url=manage_url(settings, signature_id=signature.id, locale=locale),
    )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    try:
        signature = update_service.signature_for_token(session, token=token, settings=settings)
    except ProblemError as exc:
        return _failed(request, token, exc)
    if update_service.is_unsubscribed(session, signature=signature):
        return _done(
            request, token, session=session, settings=settings, signature=signature, already=True
        )
    locale = _locale(request, signature)
    petition = session.get(Petition, signature.petition_id)
    assert petition is not None
    return _page(
        request,
        "unsubscribe.html",
        token,
        locale,
        title=petition.text(locale)["title"],
    )


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_submit(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    # The body (the page's button, or RFC 8058's `List-Unsubscribe=One-Click`) is not needed:
    # the signed token alone says who unsubscribes.
    try:
        signature = update_service.signature_for_token(session, token=token, settings=settings)
    except ProblemError as exc:
        return _failed(request, token, exc)
    already = update_service.is_unsubscribed(session, signature=signature)
    update_service.unsubscribe(session, signature=signature)
    return _done(
        request, token, session=session, settings=settings, signature=signature, already=already
    )
