"""Signing in, tokens, accounts, and the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse, Response
from fastapi.security import OAuth2PasswordRequestForm

from app.audit import service as audit_service
from app.audit.models import AuditEntryPublic
from app.auth import service as auth_service
from app.auth.deps import CurrentUser
from app.auth.models import (
    ApiToken,
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenPublic,
    TokenKind,
    TokenResponse,
    User,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from app.core.clientip import ip_hash
from app.core.deps import RowId, SessionDep, SettingsDep
from app.core.errors import Problem
from app.core.http import json_response

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}

# Public: the OAuth2 password flow.
auth_router = APIRouter(prefix="/auth", tags=["auth"])
# Mounted under /api/v1/admin, which requires a signed-in user for every route (see app/api.py).
admin_router = APIRouter(tags=["admin: accounts"])


@auth_router.post("/token", response_model=TokenResponse, responses={401: PROBLEM, 429: PROBLEM})
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Exchange e-mail (as `username`) and password for a bearer token valid 12 hours."""
    ip = request.client.host if request.client else None
    user = auth_service.sign_in(
        session,
        engine=request.app.state.engine,
        settings=settings,
        email=form.username,
        password=form.password,
        ip_digest=ip_hash(settings, ip) if ip else None,
    )
    lifetime = timedelta(hours=auth_service.SESSION_HOURS)
    token, _ = auth_service.issue_token(
        session, user=user, kind=TokenKind.session, name="login", lifetime=lifetime
    )
    return json_response(
        TokenResponse(access_token=token, expires_in=int(lifetime.total_seconds()))
    )


def _user_public(session: SessionDep, user: User) -> UserPublic:
    assert user.id is not None
    return UserPublic(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        is_active=user.is_active,
        campaigns=auth_service.campaign_slugs(session, user=user),
    )


def _token_public(record: ApiToken) -> ApiTokenPublic:
    assert record.id is not None
    return ApiTokenPublic(
        id=record.id,
        name=record.name,
        prefix=record.prefix,
        created_at=record.created_at,
        expires_at=record.expires_at,
        last_used_at=record.last_used_at,
        revoked_at=record.revoked_at,
    )


@admin_router.get("/me", response_model=UserPublic)
def me(user: CurrentUser, session: SessionDep) -> JSONResponse:
    """The signed-in account and the campaigns it manages."""
    return json_response(_user_public(session, user))


@admin_router.get("/tokens", response_model=list[ApiTokenPublic])
def list_tokens(user: CurrentUser, session: SessionDep) -> JSONResponse:
    """Your long-lived API tokens (never the tokens themselves)."""
    records = auth_service.api_tokens(session, user_id=user.id)
    return JSONResponse([_token_public(r).model_dump(mode="json") for r, _ in records])


@admin_router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=ApiTokenCreated)
def create_token(body: ApiTokenCreate, user: CurrentUser, session: SessionDep) -> JSONResponse:
    """A long-lived token for scripts. The token is shown once; only its hash is kept."""
    token, record = auth_service.create_api_token(session, actor=user, data=body)
    created = ApiTokenCreated(**_token_public(record).model_dump(), token=token)
    return json_response(created, status_code=status.HTTP_201_CREATED)


@admin_router.delete("/tokens/{token_id}", status_code=204, responses={404: PROBLEM})
def revoke_token(token_id: RowId, user: CurrentUser, session: SessionDep) -> Response:
    """Revoke a token at once."""
    auth_service.revoke_api_token(session, actor=user, token_id=token_id)
    return Response(status_code=204)


@admin_router.get("/users", response_model=list[UserPublic], responses={403: PROBLEM})
def list_users(user: CurrentUser, session: SessionDep) -> JSONResponse:
    """Every account (admins only)."""
    auth_service.require_admin(user)
    users = auth_service.list_users(session)
    return JSONResponse([_user_public(session, u).model_dump(mode="json") for u in users])


@admin_router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses={403: PROBLEM, 409: PROBLEM, 422: PROBLEM},
)
def create_user(body: UserCreate, user: CurrentUser, session: SessionDep) -> JSONResponse:
    """Create an admin or an organiser of some campaigns (admins only)."""
    created = auth_service.add_user(session, actor=user, data=body)
    return json_response(_user_public(session, created), status_code=status.HTTP_201_CREATED)


@admin_router.patch(
    "/users/{user_id}", response_model=UserPublic, responses={403: PROBLEM, 404: PROBLEM}
)
def update_user(
    user_id: RowId, body: UserUpdate, user: CurrentUser, session: SessionDep
) -> JSONResponse:
    """Change an account's role, campaigns, password or whether it may sign in (admins only)."""
    auth_service.require_admin(user)
    target = auth_service.get_user(session, user_id=user_id)
    target = auth_service.update_user(session, actor=user, user=target, data=body)
    return json_response(_user_public(session, target))


@admin_router.get("/audit", response_model=list[AuditEntryPublic])
def audit_log(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,  # (an id column)
) -> JSONResponse:
    """Who did what, newest first: everything for admins, your campaigns for organisers."""
    campaign_ids = auth_service.accessible_campaign_ids(session, user=user)
    rows = audit_service.entries(
        session, campaign_ids=campaign_ids, limit=limit, before_id=before_id
    )
    return JSONResponse(
        [
            AuditEntryPublic(
                id=r.id or 0,
                actor_email=r.actor_email,
                action=r.action,
                subject=r.subject,
                details=r.details,
                created_at=r.created_at,
            ).model_dump(mode="json")
            for r in rows
        ]
    )
