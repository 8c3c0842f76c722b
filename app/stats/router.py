"""Open data: a petition's confirmed signatures by country and by hour (public, read-only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.core.deps import SessionDep, SettingsDep
from app.core.errors import Problem
from app.core.http import json_response
from app.petitions import service as petition_service
from app.stats import service as stats_service
from app.stats.service import PetitionStats

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}

router = APIRouter(tags=["open data"])


@router.get(
    "/petitions/{slug}/stats",
    response_model=PetitionStats,
    responses={404: PROBLEM, 422: PROBLEM},
)
def petition_stats(
    slug: str,
    session: SessionDep,
    settings: SettingsDep,
    since: Annotated[
        datetime | None,
        Query(
            description="`by_hour` from the hour containing this time (ISO 8601; UTC if no "
            "offset is given)."
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        Query(description="`by_hour` up to this time, exclusive (ISO 8601; UTC if no offset)."),
    ] = None,
) -> JSONResponse:
    """Confirmed signatures of an open or closed petition: the total, the goal, per country
    (largest first) and per hour (UTC, oldest first, hours without signatures left out).

    Only counts are published, never who signed. They are computed from the tallies, so they
    are as current as the petition page.
    """
    petition = petition_service.get_public(session, slug=slug, cache_seconds=settings.CACHE_SECONDS)
    response = json_response(
        stats_service.stats(session, petition=petition, since=since, until=until)
    )
    # Open data: any site may read it, and a minute-old answer is good enough to cache.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "public, max-age=60"
    return response
