"""Updates to a petition's supporters in the console: write one per language, review it with
the number of people it will go to, send it; and the updates sent before. The updates service
(the admin API's) checks, counts, queues and audits."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.console.forms import FormFields, locales_in_order, translations
from app.console.rendering import ConsoleRoute, render, run_form
from app.console.session import Console, ConsoleDep, ConsoleFormDep
from app.core.deps import SessionDep, SettingsDep
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.updates import service as update_service
from app.updates.models import UpdateCreate

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

TEXT_FIELDS = ("subject", "body")


def _path(petition: Petition, suffix: str = "") -> str:
    return f"/admin/petitions/{petition.slug}/updates{suffix}"


def _locales(petition: Petition) -> list[str]:
    return locales_in_order(petition.default_locale, petition.translations)


def _context(console: Console, petition: Petition, **extra: Any) -> dict[str, Any]:
    return {
        "petition": petition,
        "title": petition.text(console.locale)["title"],
        "nav": "dashboard",
        **extra,
    }


def _form(
    request: Request,
    console: Console,
    session: SessionDep,
    petition: Petition,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    sent: int | None = None,
) -> Response:
    past = update_service.list_updates(session, petition=petition).data
    return render(
        request,
        console,
        "updates.html",
        _context(
            console,
            petition,
            audience=update_service.audience(session, petition=petition),
            past=past,
            sent=next((u for u in past if u.id == sent), None),
            values=values or {},
            errors=errors or {},
            locales=_locales(petition),
        ),
        status_code=422 if errors else 200,
    )


@router.get("/petitions/{slug}/updates")
def updates_page(
    slug: str,
    request: Request,
    console: ConsoleDep,
    session: SessionDep,
    sent: int | None = None,
) -> Response:
    petition = petition_service.managed(session, user=console.user, slug=slug)
    return _form(request, console, session, petition, sent=sent)


def _checked(petition: Petition, fields: dict[str, str]) -> dict[str, dict[str, str]]:
    data = UpdateCreate.model_validate({"translations": translations(fields, TEXT_FIELDS)})
    return update_service.prepare(petition, data)


@router.post("/petitions/{slug}/updates/review")
def review(
    slug: str, request: Request, console: ConsoleFormDep, session: SessionDep, fields: FormFields
) -> Response:
    """The update as signers will get it, and how many will: nothing is sent yet."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    texts, errors = run_form(session, console.locale, lambda: _checked(petition, fields))
    if texts is None:
        return _form(request, console, session, petition, values=fields, errors=errors)
    return render(
        request,
        console,
        "update_review.html",
        _context(
            console,
            petition,
            texts=[(loc, texts[loc]) for loc in _locales(petition) if loc in texts],
            audience=update_service.audience(session, petition=petition),
            # One key per review: "Send" clicked twice, or the page re-posted, sends once.
            send_key=secrets.token_urlsafe(16),
        ),
    )


@router.post("/petitions/{slug}/updates")
def send(
    slug: str,
    request: Request,
    console: ConsoleFormDep,
    session: SessionDep,
    settings: SettingsDep,
    fields: FormFields,
) -> Response:
    """Send the update reviewed (`step=send`), or go back to change it (`step=edit`)."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    if fields.get("step") != "send":
        return _form(request, console, session, petition, values=fields)
    sent, errors = run_form(
        session,
        console.locale,
        lambda: update_service.send(
            session,
            petition=petition,
            data=UpdateCreate.model_validate({"translations": translations(fields, TEXT_FIELDS)}),
            user=console.user,
            settings=settings,
            key=fields.get("send_key") or None,
        ),
    )
    if sent is None:
        return _form(request, console, session, petition, values=fields, errors=errors)
    return RedirectResponse(_path(petition, f"?sent={sent.id}"), status_code=303)
