"""Organisers' updates to the supporters who asked for them (under /api/v1/admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from app.auth.deps import CurrentUser
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import Problem
from app.core.http import json_response
from app.petitions import service as petition_service
from app.updates import service as update_service
from app.updates.models import UpdateCreate, UpdateSent
from app.updates.service import UpdateList

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}

# Mounted under /api/v1/admin, which requires a signed-in user for every route (see app/api.py).
router = APIRouter(prefix="/petitions/{slug}/updates", tags=["admin: updates"])


@router.post(
    "",
    status_code=201,
    response_model=UpdateSent,
    responses={401: PROBLEM, 404: PROBLEM, 422: PROBLEM},
)
def send_update(
    slug: str,
    body: UpdateCreate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    ] = None,
) -> JSONResponse:
    """Send an update to every signer who confirmed and asked for updates.

    `translations` maps languages to `{"subject", "body"}` (plain text; blank lines separate
    paragraphs) and must include the petition's default language, which signers whose language
    is missing get. Each e-mail carries an unsubscribe link and the signer's "manage my
    signature" link. Sending is spread out at `UPDATE_SEND_RATE_PER_MINUTE`, after any update
    still being sent: `first_send_at` and `last_send_at` say when it goes out.

    Send an `Idempotency-Key` header (any unique text up to 64 characters, e.g. a UUID) to make
    a retry safe: a second request with the same key sends nothing more and gets the first
    one's answer; the same key with different texts is refused (422).
    """
    petition = petition_service.managed(session, user=user, slug=slug)
    sent = update_service.send(
        session, petition=petition, data=body, user=user, settings=settings, key=idempotency_key
    )
    return json_response(sent, status_code=201)


@router.get("", response_model=UpdateList, responses={401: PROBLEM, 404: PROBLEM})
def list_updates(slug: str, user: CurrentUser, session: SessionDep) -> JSONResponse:
    """The petition's updates, newest first, with how many signers each was sent to."""
    petition = petition_service.managed(session, user=user, slug=slug)
    return json_response(update_service.list_updates(session, petition=petition))
