"""The admin API of a campaign's outgoing webhooks.

Mounted under /api/v1/admin, which already requires a signed-in user (see app/api.py): admins
and the campaign's organisers; a campaign or endpoint they may not manage is a 404.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import JSONResponse, Response

from app.auth.deps import CurrentUser
from app.campaigns import service as campaign_service
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import Problem
from app.core.http import json_response
from app.petitions.models import DB_INT_MAX
from app.webhooks import service as webhook_service
from app.webhooks.models import (
    WebhookAdmin,
    WebhookAttempts,
    WebhookCreate,
    WebhookCreated,
    WebhooksAdmin,
)

router = APIRouter()

PROBLEM: dict[str, Any] = {"model": Problem, "content": {"application/problem+json": {}}}
READ: dict[int | str, dict[str, Any]] = {404: PROBLEM}
WRITE: dict[int | str, dict[str, Any]] = {404: PROBLEM, 422: PROBLEM}
TAGS: list[str | Enum] = ["admin: webhooks"]

EndpointId = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
BASE = "/campaigns/{slug}/webhooks"


@router.post(
    BASE,
    tags=TAGS,
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=WRITE,
)
def create_webhook(
    slug: str, body: WebhookCreate, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Register an endpoint for some of the campaign's events. The answer carries the `whsec_`
    secret that signs every delivery (Standard Webhooks); it is shown only this once."""
    campaign = campaign_service.managed(session, user=user, slug=slug)
    created = webhook_service.create(
        session, actor=user, campaign=campaign, data=body, settings=settings
    )
    return json_response(created, status_code=201)


@router.get(BASE, tags=TAGS, response_model=WebhooksAdmin, responses=READ)
def list_webhooks(slug: str, user: CurrentUser, session: SessionDep) -> JSONResponse:
    """The campaign's endpoints, oldest first (without their secrets)."""
    campaign = campaign_service.managed(session, user=user, slug=slug)
    assert campaign.id is not None
    data = [
        webhook_service.to_admin(endpoint)
        for endpoint in webhook_service.list_for_campaign(session, campaign_id=campaign.id)
    ]
    return json_response(WebhooksAdmin(data=data, count=len(data)))


@router.post(
    BASE + "/{endpoint_id}/disable", tags=TAGS, response_model=WebhookAdmin, responses=READ
)
def disable_webhook(
    slug: str, endpoint_id: EndpointId, user: CurrentUser, session: SessionDep
) -> JSONResponse:
    """Switch the endpoint off: events are no longer queued for it, and those on their way are
    dropped. Idempotent."""
    endpoint = webhook_service.managed(session, user=user, slug=slug, endpoint_id=endpoint_id)
    endpoint = webhook_service.disable(session, actor=user, endpoint=endpoint)
    return json_response(webhook_service.to_admin(endpoint))


@router.post(BASE + "/{endpoint_id}/enable", tags=TAGS, response_model=WebhookAdmin, responses=READ)
def enable_webhook(
    slug: str, endpoint_id: EndpointId, user: CurrentUser, session: SessionDep
) -> JSONResponse:
    """Switch the endpoint on again (also one Chorus switched off after a day of failures);
    events from now on reach it. Idempotent."""
    endpoint = webhook_service.managed(session, user=user, slug=slug, endpoint_id=endpoint_id)
    endpoint = webhook_service.enable(session, actor=user, endpoint=endpoint)
    return json_response(webhook_service.to_admin(endpoint))


@router.delete(
    BASE + "/{endpoint_id}",
    tags=TAGS,
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=READ,
)
def delete_webhook(
    slug: str, endpoint_id: EndpointId, user: CurrentUser, session: SessionDep
) -> Response:
    """Delete the endpoint, its attempts log and the events still on their way to it."""
    endpoint = webhook_service.managed(session, user=user, slug=slug, endpoint_id=endpoint_id)
    webhook_service.remove(session, actor=user, endpoint=endpoint)
    return Response(status_code=204)


@router.get(
    BASE + "/{endpoint_id}/attempts", tags=TAGS, response_model=WebhookAttempts, responses=READ
)
def webhook_attempts(
    slug: str,
    endpoint_id: EndpointId,
    user: CurrentUser,
    session: SessionDep,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JSONResponse:
    """Every attempt to deliver an event to the endpoint, newest first: when, which event and
    try, the HTTP status or the error, how long it took."""
    endpoint = webhook_service.managed(session, user=user, slug=slug, endpoint_id=endpoint_id)
    assert endpoint.id is not None
    page, next_before = webhook_service.attempts(
        session, endpoint_id=endpoint.id, before=before, limit=limit
    )
    return json_response(WebhookAttempts(data=page, next_before=next_before))
