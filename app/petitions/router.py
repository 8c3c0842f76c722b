"""Public read API for petitions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import Session

from app.campaigns import service as campaign_service
from app.core.deps import SettingsDep
from app.core.errors import Problem
from app.core.http import LANG_MAX_LENGTH, cached_read, json_response
from app.core.i18n import SUPPORTED_LOCALES
from app.petitions import service as petition_service
from app.petitions.models import PetitionPublic, PetitionsPublic

router = APIRouter(prefix="/petitions", tags=["petitions"])

LangQuery = Annotated[
    str | None,
    Query(
        description=f"Language of the texts, one of {', '.join(SUPPORTED_LOCALES)}; "
        "the petition's default language when missing or not available.",
        max_length=LANG_MAX_LENGTH,
    ),
]


@router.get("", response_model=PetitionsPublic)
async def list_petitions(
    request: Request, settings: SettingsDep, lang: LangQuery = None
) -> Response:
    """Open and closed petitions, newest first, with their confirmed signature counts."""

    def build(session: Session) -> Response:
        petitions = petition_service.list_public(session)
        data = petition_service.to_summaries(
            session, petitions=petitions, locale=lang, settings=settings
        )
        return json_response(PetitionsPublic(data=data, count=len(data)))

    return await cached_read(request, settings.CACHE_SECONDS, build)


@router.get(
    "/{slug}",
    response_model=PetitionPublic,
    responses={404: {"model": Problem, "content": {"application/problem+json": {}}}},
)
async def get_petition(
    slug: str,
    request: Request,
    settings: SettingsDep,
    lang: LangQuery = None,
) -> Response:
    """One petition with its targets, confirmed count, per-country counts and goal.

    Counts may be up to CACHE_SECONDS (default 1 s) old.
    """

    def build(session: Session) -> Response:
        petition = petition_service.get_public(
            session, slug=slug, cache_seconds=settings.CACHE_SECONDS
        )
        locale = lang if lang in petition.translations else petition.default_locale
        public = petition_service.to_public(
            session,
            petition=petition,
            locale=locale,
            settings=settings,
            campaign_slug=campaign_service.slug_of(session, campaign_id=petition.campaign_id),
        )
        return json_response(public)

    return await cached_read(request, settings.CACHE_SECONDS, build)
