"""The outbox for admins: what was sent, what waits, and what failed and why."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.auth import service as auth_service
from app.auth.deps import CurrentUser
from app.core.deps import SessionDep
from app.core.errors import Problem
from app.core.http import json_response
from app.email import outbox as outbox_service
from app.email.models import OutboxPage, OutboxStatus
from app.petitions.models import DB_INT_MAX

admin_router = APIRouter(tags=["admin: e-mail"])
PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}


@admin_router.get("/outbox", response_model=OutboxPage, responses={403: PROBLEM})
def outbox(
    user: CurrentUser,
    session: SessionDep,
    status: OutboxStatus | None = None,
    after: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JSONResponse:
    """Admins: the outbox's messages, oldest first, with their attempts and the reason the
    last one failed; `status=failed` lists those given up on."""
    auth_service.require_admin(user)  # every campaign's mail, and its recipients
    entries, next_after = outbox_service.messages(session, status=status, after=after, limit=limit)
    return json_response(OutboxPage(data=entries, next_after=next_after))
