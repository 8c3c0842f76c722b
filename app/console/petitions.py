"""A petition in the console: its numbers, its lifecycle, its texts side by side, and creating
one. Every change goes through the petitions service, which the admin API calls too (and which
writes the audit log)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from app.campaigns import service as campaign_service
from app.console import service as console_service
from app.console.forms import FormFields, locales_in_order, number, translations
from app.console.rendering import ConsoleRoute, problem_messages, render, validation_messages
from app.console.session import Console, ConsoleDep, ConsoleFormDep
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import ProblemError
from app.core.i18n import SUPPORTED_LOCALES
from app.petitions import service as petition_service
from app.petitions.models import Petition, PetitionCreate, PetitionUpdate

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

TEXT_FIELDS = ("title", "summary", "body")
# What a redirect after a change may announce (`?done=`), each a catalog entry.
NOTICES = {"created", "saved", "officials", *console_service.LIFECYCLE}


def _path(petition: Petition, suffix: str = "") -> str:
    return f"/admin/petitions/{petition.slug}{suffix}"


@router.get("/petitions/{slug}")
def petition_page(
    slug: str,
    request: Request,
    console: ConsoleDep,
    session: SessionDep,
    settings: SettingsDep,
    done: str = "",
) -> Response:
    petition = petition_service.managed(session, user=console.user, slug=slug)
    page = console_service.petition_page(
        session, petition=petition, settings=settings, locale=console.locale
    )
    return render(
        request,
        console,
        "petition.html",
        {"page": page, "done": done if done in NOTICES else "", "nav": "dashboard"},
    )


# --- the lifecycle --------------------------------------------------------------------------------


@router.get("/petitions/{slug}/lifecycle/{action}")
def confirm_action(
    slug: str, action: str, request: Request, console: ConsoleDep, session: SessionDep
) -> Response:
    """Ask before a lifecycle change (no script needed: a page with the button that does it)."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    if action not in console_service.actions(petition):
        return RedirectResponse(_path(petition), status_code=303)
    return render(
        request,
        console,
        "confirm.html",
        {
            "petition": petition,
            "title": petition.text(console.locale)["title"],
            "action": action,
            "nav": "dashboard",
        },
    )


@router.post("/petitions/{slug}/lifecycle/{action}")
def do_action(slug: str, action: str, console: ConsoleFormDep, session: SessionDep) -> Response:
    petition = petition_service.managed(session, user=console.user, slug=slug)
    console_service.act(session, actor=console.user, petition=petition, action=action)
    return RedirectResponse(_path(petition, f"?done={action}"), status_code=303)


# --- texts side by side ---------------------------------------------------------------------------


def _edit_form(
    request: Request,
    console: Console,
    petition: Petition,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    if values is None:
        values = {"goal": str(petition.goal)}
        for locale, text in petition.translations.items():
            for name in TEXT_FIELDS:
                values[f"translations.{locale}.{name}"] = text.get(name, "")
    return render(
        request,
        console,
        "petition_edit.html",
        {
            "petition": petition,
            "title": petition.text(console.locale)["title"],
            "values": values,
            "errors": errors or {},
            "locales": locales_in_order(petition.default_locale, petition.translations),
            "nav": "dashboard",
        },
        status_code=422 if errors else 200,
    )


@router.get("/petitions/{slug}/edit")
def edit_page(slug: str, request: Request, console: ConsoleDep, session: SessionDep) -> Response:
    petition = petition_service.managed(session, user=console.user, slug=slug)
    return _edit_form(request, console, petition)


@router.post("/petitions/{slug}/edit")
def edit(
    slug: str, request: Request, console: ConsoleFormDep, session: SessionDep, fields: FormFields
) -> Response:
    """Save the goal and the texts of every language at once (PATCH semantics of the API: the
    languages sent are replaced, a removed one is null)."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    try:
        data = PetitionUpdate.model_validate(
            {
                "goal": number(fields.get("goal", ""), console.locale),
                "translations": translations(fields, TEXT_FIELDS, existing=petition.translations),
            }
        )
        petition_service.update(session, actor=console.user, petition=petition, data=data)
    except ValidationError as exc:
        return _edit_form(
            request,
            console,
            petition,
            values=fields,
            errors=validation_messages(console.locale, exc),
        )
    except ProblemError as exc:
        if exc.status != 422:
            raise
        session.rollback()  # nothing of a refused change is kept
        return _edit_form(
            request, console, petition, values=fields, errors=problem_messages(console.locale, exc)
        )
    return RedirectResponse(_path(petition, "?done=saved"), status_code=303)


# --- a new petition -------------------------------------------------------------------------------


def _new_form(
    request: Request,
    console: Console,
    campaign_slug: str,
    campaign_name: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    done: str = "",
) -> Response:
    return render(
        request,
        console,
        "petition_new.html",
        {
            "campaign_slug": campaign_slug,
            "campaign_name": campaign_name,
            "done": done if done == "campaign-created" else "",
            "values": values or {"default_locale": console.locale, "goal": ""},
            "errors": errors or {},
            "locales": list(SUPPORTED_LOCALES),
            "nav": "dashboard",
        },
        status_code=422 if errors else 200,
    )


@router.get("/campaigns/{slug}/petitions/new")
def new_petition_page(
    slug: str, request: Request, console: ConsoleDep, session: SessionDep, done: str = ""
) -> Response:
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    name = console_service.campaign_name(campaign, console.locale)
    return _new_form(request, console, campaign.slug, name, done=done)


@router.post("/campaigns/{slug}/petitions")
def create_petition(
    slug: str, request: Request, console: ConsoleFormDep, session: SessionDep, fields: FormFields
) -> Response:
    """A new draft petition in the campaign, in the languages filled in."""
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    name = console_service.campaign_name(campaign, console.locale)
    try:
        data = PetitionCreate.model_validate(
            {
                "slug": fields.get("slug", "").strip(),
                "goal": number(fields.get("goal", ""), console.locale),
                "default_locale": fields.get("default_locale", ""),
                "translations": translations(fields, TEXT_FIELDS),
            }
        )
        petition = petition_service.create(
            session, actor=console.user, campaign=campaign, data=data
        )
    except ValidationError as exc:
        errors = validation_messages(console.locale, exc)
        return _new_form(request, console, campaign.slug, name, values=fields, errors=errors)
    except ProblemError as exc:
        if exc.status not in (409, 422):
            raise
        session.rollback()  # nothing of a refused change is kept
        errors = problem_messages(console.locale, exc)
        return _new_form(request, console, campaign.slug, name, values=fields, errors=errors)
    return RedirectResponse(_path(petition, "?done=created"), status_code=303)
