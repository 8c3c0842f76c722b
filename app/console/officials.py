"""The officials (targets) of a campaign and their groups: list, add, edit, retire; and which
of them a petition is addressed to, in order. Every change goes through the targets and
petitions services, which the admin API calls too (and which write the audit log)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict

from app.campaigns import service as campaign_service
from app.campaigns.models import Campaign, Key
from app.console import service as console_service
from app.console.forms import FormFields, translations
from app.console.rendering import ConsoleRoute, render, run_form
from app.console.session import Console, ConsoleDep, ConsoleFormDep
from app.core.deps import SessionDep
from app.core.errors import ProblemError
from app.core.i18n import SUPPORTED_LOCALES, country_names, translate
from app.petitions import service as petition_service
from app.targets import service as target_service
from app.targets.models import (
    DeliveryChannel,
    GroupNames,
    Target,
    TargetCreate,
    TargetGroup,
    TargetUpdate,
)

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

TargetId = Annotated[int, Path(ge=1, le=2**31 - 1)]
TEXT_FIELDS = ("name", "role", "organisation")
PLAIN_FIELDS = ("key", "name", "role", "organisation", "country", "language")
NOTICES = {"created", "saved", "retired", "group-saved"}


class GroupForm(BaseModel):
    """A group of officials as the console's form gives it (the API's own types)."""

    model_config = ConfigDict(extra="forbid")

    key: Key
    names: GroupNames


def _officials_path(campaign: Campaign, done: str = "") -> str:
    return f"/admin/campaigns/{campaign.slug}/officials" + (f"?done={done}" if done else "")


def _context(console: Console, campaign: Campaign, **extra: Any) -> dict[str, Any]:
    return {
        "campaign_slug": campaign.slug,
        "campaign_name": console_service.campaign_name(campaign, console.locale),
        "nav": "dashboard",
        **extra,
    }


def _groups(session: SessionDep, campaign: Campaign) -> tuple[list[TargetGroup], list[Target]]:
    assert campaign.id is not None
    return target_service.list_for_campaign(session, campaign_id=campaign.id)


# --- the list -------------------------------------------------------------------------------------


@router.get("/campaigns/{slug}/officials")
def officials_page(
    slug: str, request: Request, console: ConsoleDep, session: SessionDep, done: str = ""
) -> Response:
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    groups, targets = _groups(session, campaign)
    sections = console_service.official_sections(groups, targets, console.locale)
    return render(
        request,
        console,
        "officials.html",
        _context(
            console,
            campaign,
            sections=sections,
            groups=[(g.key, console_service.group_name(g, console.locale)) for g in groups],
            done=done if done in NOTICES else "",
        ),
    )


# --- adding and editing an official ---------------------------------------------------------------


def _official_form(
    request: Request,
    console: Console,
    session: SessionDep,
    campaign: Campaign,
    *,
    target: Target | None,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
) -> Response:
    groups, _ = _groups(session, campaign)
    return render(
        request,
        console,
        "official_form.html",
        _context(
            console,
            campaign,
            target=target,
            values=values,
            errors=errors or {},
            countries=[
                ("", translate(console.locale, "console.official.choose_country")),
                *country_names(console.locale),
            ],
            group_options=[
                ("", translate(console.locale, "console.official.no_group")),
                *((g.key, console_service.group_name(g, console.locale)) for g in groups),
            ],
            channels=list(DeliveryChannel),
            locales=list(SUPPORTED_LOCALES),
            existing=target.translations if target else {},
        ),
        status_code=422 if errors else 200,
    )


def _values_of(target: Target, group: str | None) -> dict[str, str]:
    values = {name: str(getattr(target, name)) for name in PLAIN_FIELDS}
    values |= {
        "email": target.email or "",
        "postal_address": target.postal_address or "",
        "delivery_channel": str(target.delivery_channel),
        "group": group or "",
    }
    for locale, text in target.translations.items():
        for name in TEXT_FIELDS:
            values[f"translations.{locale}.{name}"] = text.get(name, "")
    return values


def _posted(fields: dict[str, str], existing: dict[str, Any] | None) -> dict[str, Any]:
    """The official's fields as the API takes them (an empty address is none)."""
    return {
        **{name: fields.get(name, "").strip() for name in PLAIN_FIELDS},
        "email": fields.get("email", "").strip() or None,
        "postal_address": fields.get("postal_address", "").strip() or None,
        "delivery_channel": fields.get("delivery_channel", ""),
        "translations": translations(fields, TEXT_FIELDS, existing=existing),
        "group": fields.get("group") or None,
    }


@router.get("/campaigns/{slug}/officials/new")
def new_official_page(
    slug: str, request: Request, console: ConsoleDep, session: SessionDep
) -> Response:
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    values = {"delivery_channel": DeliveryChannel.email.value}
    return _official_form(request, console, session, campaign, target=None, values=values)


@router.post("/campaigns/{slug}/officials")
def create_official(
    slug: str, request: Request, console: ConsoleFormDep, session: SessionDep, fields: FormFields
) -> Response:
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    created, errors = run_form(
        session,
        console.locale,
        lambda: target_service.create(
            session,
            actor=console.user,
            campaign=campaign,
            data=TargetCreate.model_validate(_posted(fields, None)),
        ),
    )
    if created is None:
        return _official_form(
            request, console, session, campaign, target=None, values=fields, errors=errors
        )
    return RedirectResponse(_officials_path(campaign, "created"), status_code=303)


def _managed(session: SessionDep, console: Console, target_id: int) -> tuple[Target, Campaign]:
    target = target_service.managed(session, user=console.user, target_id=target_id)
    return target, campaign_service.get(session, campaign_id=target.campaign_id)


@router.get("/officials/{target_id}/edit")
def edit_official_page(
    target_id: TargetId, request: Request, console: ConsoleDep, session: SessionDep
) -> Response:
    target, campaign = _managed(session, console, target_id)
    [shown] = target_service.to_admin_list(session, [target])
    values = _values_of(target, shown.group)
    return _official_form(request, console, session, campaign, target=target, values=values)


@router.post("/officials/{target_id}/edit")
def edit_official(
    target_id: TargetId,
    request: Request,
    console: ConsoleFormDep,
    session: SessionDep,
    fields: FormFields,
) -> Response:
    """Save every field of the official at once (the API's PATCH with all of them)."""
    target, campaign = _managed(session, console, target_id)
    existing = dict(target.translations)
    saved, errors = run_form(
        session,
        console.locale,
        lambda: target_service.update(
            session,
            actor=console.user,
            target=target,
            data=TargetUpdate.model_validate(_posted(fields, existing)),
        ),
    )
    if saved is None:
        return _official_form(
            request, console, session, campaign, target=target, values=fields, errors=errors
        )
    return RedirectResponse(_officials_path(campaign, "saved"), status_code=303)


# --- retiring -------------------------------------------------------------------------------------


@router.get("/officials/{target_id}/retire")
def retire_page(
    target_id: TargetId, request: Request, console: ConsoleDep, session: SessionDep
) -> Response:
    """Ask before retiring (a page with the button that does it)."""
    target, campaign = _managed(session, console, target_id)
    if target.retired_at is not None:
        return RedirectResponse(_officials_path(campaign), status_code=303)
    return render(
        request,
        console,
        "official_retire.html",
        _context(console, campaign, target=target, text=target.text(console.locale)),
    )


@router.post("/officials/{target_id}/retire")
def retire(target_id: TargetId, console: ConsoleFormDep, session: SessionDep) -> Response:
    target, campaign = _managed(session, console, target_id)
    target_service.retire(session, actor=console.user, target=target)
    return RedirectResponse(_officials_path(campaign, "retired"), status_code=303)


# --- groups ---------------------------------------------------------------------------------------


def _group_form(
    request: Request,
    console: Console,
    campaign: Campaign,
    *,
    group: str | None,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        console,
        "group_form.html",
        _context(
            console,
            campaign,
            group=group,
            values=values,
            errors=errors or {},
            locales=list(SUPPORTED_LOCALES),
        ),
        status_code=422 if errors else 200,
    )


def _save_group(
    session: SessionDep, console: Console, campaign: Campaign, key: str, fields: dict[str, str]
) -> TargetGroup:
    assert campaign.id is not None
    names = {
        loc: fields[f"names.{loc}"]
        for loc in SUPPORTED_LOCALES
        if fields.get(f"names.{loc}", "").strip()
    }
    data = GroupForm.model_validate({"key": key, "names": names})
    return target_service.save_group(
        session, actor=console.user, campaign_id=campaign.id, key=data.key, names=data.names
    )


@router.get("/campaigns/{slug}/groups/new")
def new_group_page(
    slug: str, request: Request, console: ConsoleDep, session: SessionDep
) -> Response:
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    return _group_form(request, console, campaign, group=None, values={})


@router.post("/campaigns/{slug}/groups")
def create_group(
    slug: str, request: Request, console: ConsoleFormDep, session: SessionDep, fields: FormFields
) -> Response:
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    key = fields.get("key", "").strip()
    groups, _ = _groups(session, campaign)
    if any(g.key == key for g in groups):  # a new group: an existing key is not renamed here
        errors = {"key": translate(console.locale, "console.errors.group-exists")}
        return _group_form(request, console, campaign, group=None, values=fields, errors=errors)
    saved, errors = run_form(
        session, console.locale, lambda: _save_group(session, console, campaign, key, fields)
    )
    if saved is None:
        return _group_form(request, console, campaign, group=None, values=fields, errors=errors)
    return RedirectResponse(_officials_path(campaign, "group-saved"), status_code=303)


def _group(session: SessionDep, campaign: Campaign, key: str) -> TargetGroup:
    groups, _ = _groups(session, campaign)
    for group in groups:
        if group.key == key:
            return group
    raise ProblemError(404, "group-not-found", "Group not found")


@router.get("/campaigns/{slug}/groups/{key}")
def edit_group_page(
    slug: str, key: str, request: Request, console: ConsoleDep, session: SessionDep
) -> Response:
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    group = _group(session, campaign, key)
    values = {f"names.{loc}": str(name) for loc, name in group.names.items()}
    return _group_form(request, console, campaign, group=group.key, values=values)


@router.post("/campaigns/{slug}/groups/{key}")
def edit_group(
    slug: str,
    key: str,
    request: Request,
    console: ConsoleFormDep,
    session: SessionDep,
    fields: FormFields,
) -> Response:
    """Rename a group in the languages filled in (a name once given can be changed, not
    removed, as in the API)."""
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    group = _group(session, campaign, key)
    saved, errors = run_form(
        session, console.locale, lambda: _save_group(session, console, campaign, group.key, fields)
    )
    if saved is None:
        return _group_form(
            request, console, campaign, group=group.key, values=fields, errors=errors
        )
    return RedirectResponse(_officials_path(campaign, "group-saved"), status_code=303)


# --- a petition's officials, in order -------------------------------------------------------------


def _choice_form(
    request: Request,
    console: Console,
    session: SessionDep,
    slug: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    petition = petition_service.managed(session, user=console.user, slug=slug)
    assert petition.id is not None
    campaign = campaign_service.get(session, campaign_id=petition.campaign_id)
    _, targets = _groups(session, campaign)
    current = [t for t in targets if t.retired_at is None]
    if values is None:
        chosen = petition_service.targets(session, petition_id=petition.id)
        values = {}
        for position, target in enumerate(chosen, start=1):
            values[f"target.{target.id}"] = "1"
            values[f"order.{target.id}"] = str(position)
    return render(
        request,
        console,
        "petition_officials.html",
        _context(
            console,
            campaign,
            petition=petition,
            title=petition.text(console.locale)["title"],
            officials=[(t, t.text(console.locale)) for t in current],
            values=values,
            errors=errors or {},
        ),
        status_code=422 if errors else 200,
    )


@router.get("/petitions/{slug}/officials")
def choose_officials_page(
    slug: str, request: Request, console: ConsoleDep, session: SessionDep
) -> Response:
    return _choice_form(request, console, session, slug)


@router.post("/petitions/{slug}/officials")
def choose_officials(
    slug: str, request: Request, console: ConsoleFormDep, session: SessionDep, fields: FormFields
) -> Response:
    """Address the petition to the officials ticked, in the order their numbers give (those
    without a number after those with one, in the list's order)."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    chosen, errors = console_service.chosen_in_order(fields, console.locale)
    if not errors:
        _, errors = run_form(
            session,
            console.locale,
            lambda: petition_service.set_targets(
                session, actor=console.user, petition=petition, target_ids=chosen
            ),
        )
    if errors:
        return _choice_form(request, console, session, slug, values=fields, errors=errors)
    return RedirectResponse(f"/admin/petitions/{petition.slug}?done=officials", status_code=303)
