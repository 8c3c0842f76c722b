"""Signature exports for admins and organisers (mounted under /api/v1/admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine

from app.auth.deps import CurrentUser
from app.core.deps import SessionDep
from app.core.errors import Problem
from app.exports import service as export_service
from app.exports.service import ExportFormat
from app.petitions import service as petition_service
from app.signatures.models import SignatureStatus

router = APIRouter(tags=["admin: exports"])

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}
EXPORT_CONTENT: dict[str, Any] = {
    "text/csv": {"schema": {"type": "string"}},
    "application/x-ndjson": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
}


@router.get(
    "/petitions/{slug}/signatures",
    response_class=StreamingResponse,
    responses={
        200: {"description": "The signatures, streamed as a download", "content": EXPORT_CONTENT},
        401: PROBLEM,
        404: PROBLEM,
        422: PROBLEM,
    },
)
def export_signatures(
    slug: str,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    export_format: Annotated[
        ExportFormat, Query(alias="format", description="csv, ndjson or json (a JSON array).")
    ] = ExportFormat.csv,
    status: Annotated[
        SignatureStatus | None, Query(description="Only signatures in this state; all when unset.")
    ] = None,
    created_from: Annotated[
        str | None,
        Query(
            description="Signed at or after this ISO 8601 date or time (UTC without an offset).",
            examples=["2026-11-01T00:00:00Z"],
        ),
    ] = None,
    created_to: Annotated[
        str | None,
        Query(
            description="Signed before this ISO 8601 date or time (UTC without an offset).",
            examples=["2026-12-01"],
        ),
    ] = None,
    country: Annotated[
        list[str] | None,
        Query(
            description="ISO 3166-1 alpha-2 codes: repeat the parameter or give a comma list.",
            examples=[["KR", "UA"]],
        ),
    ] = None,
    consent_updates: Annotated[
        bool | None, Query(description="Only signers who did (true) or did not (false) opt in.")
    ] = None,
    bom: Annotated[bool, Query(description="CSV only: start with a UTF-8 BOM, for Excel.")] = False,
) -> StreamingResponse:
    """A petition's signatures as a download, streamed whatever their number.

    Organisers may export their campaigns' petitions (404 otherwise). CSV cells that a
    spreadsheet could run as formulas start with an apostrophe; NDJSON and JSON keep the values
    as they are. Signatures anonymised under the retention rules have empty personal fields.
    Each export is written to the audit log.
    """
    petition = petition_service.managed(session, user=user, slug=slug)
    filters = export_service.make_filters(
        status=status,
        created_from=created_from,
        created_to=created_to,
        countries=country or (),
        consent_updates=consent_updates,
    )
    # The request's transaction (with the audit entry) commits before the body streams; the
    # body reads in short connections of its own.
    engine: Engine = request.app.state.engine
    body = export_service.begin_export(
        session,
        engine,
        petition=petition,
        actor=user,
        export_format=export_format,
        filters=filters,
        bom=bom,
    )
    return StreamingResponse(
        body,
        media_type=export_format.media_type,
        headers=export_service.download_headers(slug=petition.slug, export_format=export_format),
    )
