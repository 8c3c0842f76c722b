"""Admins only: the accounts of the people who run Chorus (create, role, campaigns, deactivate)
and long-lived API tokens (issue, revoke). The auth service (the admin API's) applies the rules
and writes the audit log: a role change or deactivation ends the account's sessions there."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from app.auth import service as auth_service
from app.auth.models import ApiTokenCreate, Role, User, UserCreate, UserUpdate
from app.campaigns import service as campaign_service
from app.console import service as console_service
from app.console.forms import FormFields, number
from app.console.rendering import ConsoleRoute, render, run_form
from app.console.session import Console, ConsoleDep, ConsoleFormDep
from app.core.deps import SessionDep

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

RowIdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
NOTICES = {"created", "saved", "revoked"}


def _campaigns(session: SessionDep, console: Console) -> list[tuple[str, str]]:
    """(slug, name) of every campaign, for the membership checkboxes."""
    return [
        (c.slug, console_service.campaign_name(c, console.locale))
        for c in campaign_service.list_managed(session, user=console.user)
    ]


# --- accounts -------------------------------------------------------------------------------------


@router.get("/accounts")
def accounts_page(
    request: Request, console: ConsoleDep, session: SessionDep, done: str = ""
) -> Response:
    auth_service.require_admin(console.user)
    users = auth_service.list_users(session)
    return render(
        request,
        console,
        "accounts.html",
        {
            "accounts": [(u, auth_service.campaign_slugs(session, user=u)) for u in users],
            "done": done if done in NOTICES else "",
            "nav": "accounts",
        },
    )


def _account_form(
    request: Request,
    console: Console,
    session: SessionDep,
    *,
    account: User | None,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        console,
        "account_form.html",
        {
            "account": account,
            "values": values,
            "errors": errors or {},
            "campaigns": _campaigns(session, console),
            "roles": list(Role),
            "nav": "accounts",
        },
        status_code=422 if errors else 200,
    )


def _chosen_campaigns(session: SessionDep, console: Console, fields: dict[str, str]) -> list[str]:
    return [slug for slug, _ in _campaigns(session, console) if fields.get(f"campaign.{slug}")]


@router.get("/accounts/new")
def new_account_page(request: Request, console: ConsoleDep, session: SessionDep) -> Response:
    auth_service.require_admin(console.user)
    values = {"role": Role.organiser.value}
    return _account_form(request, console, session, account=None, values=values)


@router.post("/accounts")
def create_account(
    request: Request, console: ConsoleFormDep, session: SessionDep, fields: FormFields
) -> Response:
    auth_service.require_admin(console.user)
    data: dict[str, Any] = {
        "email": fields.get("email", "").strip(),
        "name": fields.get("name", "").strip(),
        "password": fields.get("password", ""),
        "role": fields.get("role", ""),
        "campaigns": _chosen_campaigns(session, console, fields),
    }
    created, errors = run_form(
        session,
        console.locale,
        lambda: auth_service.add_user(
            session, actor=console.user, data=UserCreate.model_validate(data)
        ),
    )
    if created is None:
        values = {k: v for k, v in fields.items() if k != "password"}  # never sent back
        return _account_form(request, console, session, account=None, values=values, errors=errors)
    return RedirectResponse("/admin/accounts?done=created", status_code=303)


@router.get("/accounts/{user_id}")
def edit_account_page(
    user_id: RowIdPath, request: Request, console: ConsoleDep, session: SessionDep
) -> Response:
    auth_service.require_admin(console.user)
    account = auth_service.get_user(session, user_id=user_id)
    values = {"name": account.name, "role": str(account.role)}
    if account.is_active:
        values["is_active"] = "1"
    for slug in auth_service.campaign_slugs(session, user=account):
        values[f"campaign.{slug}"] = "1"
    return _account_form(request, console, session, account=account, values=values)


@router.post("/accounts/{user_id}")
def edit_account(
    user_id: RowIdPath,
    request: Request,
    console: ConsoleFormDep,
    session: SessionDep,
    fields: FormFields,
) -> Response:
    """Save name, role, campaigns and whether the account may sign in; a new password only
    when one is typed."""
    auth_service.require_admin(console.user)
    account = auth_service.get_user(session, user_id=user_id)
    data: dict[str, Any] = {
        "name": fields.get("name", "").strip(),
        "role": fields.get("role", ""),
        "is_active": bool(fields.get("is_active")),
        "campaigns": _chosen_campaigns(session, console, fields),
    }
    if fields.get("password"):
        data["password"] = fields["password"]
    saved, errors = run_form(
        session,
        console.locale,
        lambda: auth_service.update_user(
            session, actor=console.user, user=account, data=UserUpdate.model_validate(data)
        ),
    )
    if saved is None:
        values = {k: v for k, v in fields.items() if k != "password"}
        return _account_form(
            request, console, session, account=account, values=values, errors=errors
        )
    return RedirectResponse("/admin/accounts?done=saved", status_code=303)


# --- API tokens -----------------------------------------------------------------------------------


def _tokens_page(
    request: Request,
    console: Console,
    session: SessionDep,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    issued: str = "",
    done: str = "",
) -> Response:
    return render(
        request,
        console,
        "tokens.html",
        {
            "tokens": auth_service.api_tokens(session, user_id=None),
            "values": values or {},
            "errors": errors or {},
            "issued": issued,
            "done": done if done in NOTICES else "",
            "nav": "tokens",
        },
        status_code=422 if errors else 200,
    )


@router.get("/tokens")
def tokens_page(
    request: Request, console: ConsoleDep, session: SessionDep, done: str = ""
) -> Response:
    auth_service.require_admin(console.user)
    return _tokens_page(request, console, session, done=done)


@router.post("/tokens")
def issue_token(
    request: Request, console: ConsoleFormDep, session: SessionDep, fields: FormFields
) -> Response:
    """A token for the signed-in admin's scripts. Shown on the answer to this POST only (no
    redirect: after one, the token could not be shown, as only its hash is kept)."""
    auth_service.require_admin(console.user)
    days = fields.get("expires_in_days", "").strip()
    data = {
        "name": fields.get("name", "").strip(),
        "expires_in_days": number(days, console.locale) if days else None,
    }
    issued, errors = run_form(
        session,
        console.locale,
        lambda: auth_service.create_api_token(
            session, actor=console.user, data=ApiTokenCreate.model_validate(data)
        ),
    )
    if issued is None:
        return _tokens_page(request, console, session, values=fields, errors=errors)
    return _tokens_page(request, console, session, issued=issued[0])


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: RowIdPath, console: ConsoleFormDep, session: SessionDep) -> Response:
    auth_service.require_admin(console.user)
    auth_service.revoke_api_token(session, actor=console.user, token_id=token_id)
    return RedirectResponse("/admin/tokens?done=revoked", status_code=303)
