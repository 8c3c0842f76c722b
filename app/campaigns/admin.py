"""The admin API of campaigns, their petitions and their targets.

Mounted under /api/v1/admin, which already requires a signed-in user (see app/api.py). Admins
may do everything; organisers manage the campaigns they are members of, and anything else is
404 to them (its existence is not revealed). Only admins create campaigns. Every change is
written to the audit log by the services.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from fastapi.responses import JSONResponse

from app.auth.deps import CurrentUser
from app.campaigns import service as campaign_service
from app.campaigns.models import CampaignAdmin, CampaignCreate, CampaignsAdmin, CampaignUpdate
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import Problem
from app.core.http import json_response
from app.petitions import service as petition_service
from app.petitions.models import (
    DB_INT_MAX,
    Petition,
    PetitionAdmin,
    PetitionCreate,
    PetitionsAdmin,
    PetitionStatusChange,
    PetitionTargetsUpdate,
    PetitionUpdate,
)
from app.targets import service as target_service
from app.targets.models import TargetAdmin, TargetCreate, TargetsAdmin, TargetUpdate

router = APIRouter()

PROBLEM: dict[str, Any] = {"model": Problem, "content": {"application/problem+json": {}}}
READ: dict[int | str, dict[str, Any]] = {404: PROBLEM}
WRITE: dict[int | str, dict[str, Any]] = {404: PROBLEM, 409: PROBLEM, 422: PROBLEM}
CREATE_CAMPAIGN: dict[int | str, dict[str, Any]] = {403: PROBLEM, 409: PROBLEM, 422: PROBLEM}

CAMPAIGNS: list[str | Enum] = ["admin: campaigns"]
PETITIONS: list[str | Enum] = ["admin: petitions"]
TARGETS: list[str | Enum] = ["admin: targets"]

TargetIdPath = Annotated[int, Path(ge=1, le=DB_INT_MAX)]


def _petition(
    session: SessionDep, settings: SettingsDep, petition: Petition, status_code: int = 200
) -> JSONResponse:
    campaign_slug = campaign_service.slug_of(session, campaign_id=petition.campaign_id)
    public = petition_service.to_admin(
        session, petition=petition, settings=settings, campaign_slug=campaign_slug
    )
    return json_response(public, status_code=status_code)


# --- campaigns --------------------------------------------------------------------------------


@router.post(
    "/campaigns",
    tags=CAMPAIGNS,
    status_code=status.HTTP_201_CREATED,
    response_model=CampaignAdmin,
    responses=CREATE_CAMPAIGN,
)
def create_campaign(body: CampaignCreate, user: CurrentUser, session: SessionDep) -> JSONResponse:
    """Create a campaign (admins only)."""
    campaign = campaign_service.create(session, actor=user, data=body)
    return json_response(campaign_service.to_admin(campaign), status_code=201)


@router.get("/campaigns", tags=CAMPAIGNS, response_model=CampaignsAdmin)
def list_campaigns(user: CurrentUser, session: SessionDep) -> JSONResponse:
    """The campaigns you manage (every campaign for admins)."""
    data = [campaign_service.to_admin(c) for c in campaign_service.list_managed(session, user=user)]
    return json_response(CampaignsAdmin(data=data, count=len(data)))


@router.get("/campaigns/{slug}", tags=CAMPAIGNS, response_model=CampaignAdmin, responses=READ)
def get_campaign(slug: str, user: CurrentUser, session: SessionDep) -> JSONResponse:
    campaign = campaign_service.managed(session, user=user, slug=slug)
    return json_response(campaign_service.to_admin(campaign))


@router.patch("/campaigns/{slug}", tags=CAMPAIGNS, response_model=CampaignAdmin, responses=WRITE)
def update_campaign(
    slug: str, body: CampaignUpdate, user: CurrentUser, session: SessionDep
) -> JSONResponse:
    """Change the default language, texts (the languages sent; null removes one), currencies or
    the origins that may embed the sign form."""
    campaign = campaign_service.managed(session, user=user, slug=slug)
    campaign = campaign_service.update(session, actor=user, campaign=campaign, data=body)
    return json_response(campaign_service.to_admin(campaign))


# --- petitions --------------------------------------------------------------------------------


@router.post(
    "/campaigns/{slug}/petitions",
    tags=PETITIONS,
    status_code=status.HTTP_201_CREATED,
    response_model=PetitionAdmin,
    responses=WRITE,
)
def create_petition(
    slug: str, body: PetitionCreate, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Create a petition in the campaign, as a draft (open it with the status endpoint)."""
    campaign = campaign_service.managed(session, user=user, slug=slug)
    petition = petition_service.create(session, actor=user, campaign=campaign, data=body)
    return _petition(session, settings, petition, status_code=201)


@router.get(
    "/campaigns/{slug}/petitions", tags=PETITIONS, response_model=PetitionsAdmin, responses=READ
)
def list_petitions(
    slug: str, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Every petition of the campaign, drafts and archived ones included, newest first."""
    campaign = campaign_service.managed(session, user=user, slug=slug)
    assert campaign.id is not None
    petitions = petition_service.list_for_campaign(session, campaign_id=campaign.id)
    data = petition_service.to_admin_summaries(
        session, petitions=petitions, settings=settings, campaign_slug=campaign.slug
    )
    return json_response(PetitionsAdmin(data=data, count=len(data)))


@router.get("/petitions/{slug}", tags=PETITIONS, response_model=PetitionAdmin, responses=READ)
def get_petition(
    slug: str, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """A petition in any status, with every language and its targets."""
    petition = petition_service.managed(session, user=user, slug=slug)
    return _petition(session, settings, petition)


@router.patch("/petitions/{slug}", tags=PETITIONS, response_model=PetitionAdmin, responses=WRITE)
def update_petition(
    slug: str, body: PetitionUpdate, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Change goal, default language, dates or texts; `translations` replaces only the languages
    sent (null removes one)."""
    petition = petition_service.managed(session, user=user, slug=slug)
    petition = petition_service.update(session, actor=user, petition=petition, data=body)
    return _petition(session, settings, petition)


@router.post(
    "/petitions/{slug}/status", tags=PETITIONS, response_model=PetitionAdmin, responses=WRITE
)
def change_petition_status(
    slug: str,
    body: PetitionStatusChange,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> JSONResponse:
    """draft → open, open → closed, closed → archived, closed → open (reopen); 409 otherwise."""
    petition = petition_service.managed(session, user=user, slug=slug)
    petition = petition_service.change_status(
        session, actor=user, petition=petition, status=body.status
    )
    return _petition(session, settings, petition)


@router.put(
    "/petitions/{slug}/targets", tags=PETITIONS, response_model=PetitionAdmin, responses=WRITE
)
def set_petition_targets(
    slug: str,
    body: PetitionTargetsUpdate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Address the petition to these targets of its campaign, in this order."""
    petition = petition_service.managed(session, user=user, slug=slug)
    petition_service.set_targets(session, actor=user, petition=petition, target_ids=body.target_ids)
    return _petition(session, settings, petition)


# --- targets ----------------------------------------------------------------------------------


@router.post(
    "/campaigns/{slug}/targets",
    tags=TARGETS,
    status_code=status.HTTP_201_CREATED,
    response_model=TargetAdmin,
    responses=WRITE,
)
def create_target(
    slug: str, body: TargetCreate, user: CurrentUser, session: SessionDep
) -> JSONResponse:
    """Add an official; `group` puts it in a group, created (with `group_names`) when new."""
    campaign = campaign_service.managed(session, user=user, slug=slug)
    target = target_service.create(session, actor=user, campaign=campaign, data=body)
    [public] = target_service.to_admin_list(session, [target])
    return json_response(public, status_code=201)


@router.get("/campaigns/{slug}/targets", tags=TARGETS, response_model=TargetsAdmin, responses=READ)
def list_targets(slug: str, user: CurrentUser, session: SessionDep) -> JSONResponse:
    """The campaign's groups and targets (retired ones too), each target with its group key."""
    campaign = campaign_service.managed(session, user=user, slug=slug)
    assert campaign.id is not None
    groups, targets = target_service.list_for_campaign(session, campaign_id=campaign.id)
    data = target_service.to_admin_list(session, targets)
    return json_response(
        TargetsAdmin(
            groups=[target_service.group_to_admin(g) for g in groups], data=data, count=len(data)
        )
    )


@router.patch("/targets/{target_id}", tags=TARGETS, response_model=TargetAdmin, responses=WRITE)
def update_target(
    target_id: TargetIdPath, body: TargetUpdate, user: CurrentUser, session: SessionDep
) -> JSONResponse:
    target = target_service.managed(session, user=user, target_id=target_id)
    target = target_service.update(session, actor=user, target=target, data=body)
    [public] = target_service.to_admin_list(session, [target])
    return json_response(public)


@router.post(
    "/targets/{target_id}/retire", tags=TARGETS, response_model=TargetAdmin, responses=READ
)
def retire_target(target_id: TargetIdPath, user: CurrentUser, session: SessionDep) -> JSONResponse:
    """Stop addressing this official: it disappears from petition pages. Idempotent."""
    target = target_service.managed(session, user=user, target_id=target_id)
    target = target_service.retire(session, actor=user, target=target)
    [public] = target_service.to_admin_list(session, [target])
    return json_response(public)
