"""Abuse controls for organisers and admins: reports, invalidation, release, lists, the switch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from app.abuse import rules as abuse_rules
from app.abuse import service as abuse_service
from app.abuse.models import (
    AbuseRule,
    InvalidateRequest,
    InvalidateResult,
    RuleCreate,
    RulePublic,
    SigningSwitch,
    TrendingReport,
)
from app.auth import service as auth_service
from app.auth.deps import CurrentUser
from app.core.deps import RowId, SessionDep, SettingsDep
from app.core.errors import Problem
from app.core.http import json_response
from app.petitions import service as petition_service
from app.signatures import service as signature_service

router = APIRouter(tags=["admin: abuse"])
PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}


class Released(BaseModel):
    released: int


class ReleaseRequest(BaseModel):
    ip_hash: str | None = None
    domain: str | None = None


@router.get(
    "/petitions/{slug}/abuse/trending", response_model=TrendingReport, responses={404: PROBLEM}
)
def trending(
    slug: str,
    user: CurrentUser,
    session: SessionDep,
    minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60)] = 60,
) -> JSONResponse:
    """The IP hashes and e-mail domains signing this petition most, and how many were held."""
    petition = petition_service.managed(session, user=user, slug=slug)
    ips, domains = abuse_service.trending(session, petition=petition, minutes=minutes)
    return json_response(TrendingReport(petition=slug, minutes=minutes, ips=ips, domains=domains))


@router.post(
    "/petitions/{slug}/signatures/invalidate",
    response_model=InvalidateResult,
    responses={404: PROBLEM, 422: PROBLEM},
)
def invalidate(
    slug: str,
    body: InvalidateRequest,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Invalidate signatures by IP, domain, country or time range; the counts follow."""
    petition = petition_service.managed(session, user=user, slug=slug)
    done, uncounted = abuse_service.invalidate_for(
        session, petition=petition, settings=settings, user=user, body=body
    )
    assert petition.id is not None
    return json_response(
        InvalidateResult(
            invalidated=done,
            uncounted=uncounted,
            signature_count=signature_service.confirmed_count(session, petition_id=petition.id),
        )
    )


@router.post(
    "/petitions/{slug}/signatures/release", response_model=Released, responses={404: PROBLEM}
)
def release(
    slug: str, body: ReleaseRequest, user: CurrentUser, session: SessionDep
) -> JSONResponse:
    """Release held signatures (false alarms): they get their confirmation e-mail."""
    petition = petition_service.managed(session, user=user, slug=slug)
    released = abuse_service.release_for(
        session, petition=petition, user=user, ip_digest=body.ip_hash, domain=body.domain
    )
    return json_response(Released(released=released))


@router.post("/petitions/{slug}/signing", response_model=SigningSwitch, responses={404: PROBLEM})
def signing_switch(
    slug: str, body: SigningSwitch, user: CurrentUser, session: SessionDep
) -> JSONResponse:
    """Stop (paused: true) or resume taking signatures, without closing the petition."""
    petition = petition_service.managed(session, user=user, slug=slug)
    petition = petition_service.set_signing_paused(
        session, actor=user, petition=petition, paused=body.paused
    )
    return json_response(SigningSwitch(paused=petition.signing_paused))


def _public(rule: AbuseRule) -> RulePublic:
    return RulePublic(
        id=rule.id or 0,
        kind=rule.kind,
        value=rule.value,
        action=rule.action,
        note=rule.note,
        created_at=rule.created_at,
    )


@router.get("/abuse/rules", response_model=list[RulePublic], responses={403: PROBLEM})
def list_rules(user: CurrentUser, session: SessionDep) -> JSONResponse:
    """Allow and block rules (admins only). IP rules show the address's hash."""
    auth_service.require_admin(user)
    rules = abuse_rules.list_rules(session)
    return JSONResponse([_public(r).model_dump(mode="json") for r in rules])


@router.post(
    "/abuse/rules",
    status_code=status.HTTP_201_CREATED,
    response_model=RulePublic,
    responses={403: PROBLEM, 409: PROBLEM, 422: PROBLEM},
)
def create_rule(
    body: RuleCreate, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Allow (never rate-limited) or block (always held) an IP, a domain or an address."""
    auth_service.require_admin(user)
    rule = abuse_rules.add_rule(session, actor=user, data=body, settings=settings)
    return json_response(_public(rule), status_code=status.HTTP_201_CREATED)


@router.delete("/abuse/rules/{rule_id}", status_code=204, responses={403: PROBLEM, 404: PROBLEM})
def delete_rule(rule_id: RowId, user: CurrentUser, session: SessionDep) -> Response:
    """Remove a rule."""
    auth_service.require_admin(user)
    abuse_rules.remove_rule(session, actor=user, rule_id=rule_id)
    return Response(status_code=204)
