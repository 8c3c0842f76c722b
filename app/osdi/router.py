"""The OSDI 1.1 API under /api/osdi/v1: HAL+JSON reads of petitions, signatures and people,
and the record signature helper. Authenticated as the admin API is (its tokens, its roles).

OSDI clients send their key as an `OSDI-API-Token` header; Chorus's `Authorization: Bearer`
works too. Both go to the admin API's own user dependency.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from app.abuse.service import SigningSource
from app.auth.deps import bearer, get_current_user
from app.core.deps import RowId, SessionDep, SettingsDep
from app.core.errors import Problem
from app.osdi import service as osdi_service
from app.osdi.models import (
    OsdiDocument,
    OsdiEntryPoint,
    OsdiPeople,
    OsdiPerson,
    OsdiPetition,
    OsdiPetitions,
    OsdiRecordSignature,
    OsdiSignature,
    OsdiSignatureAccepted,
    OsdiSignatures,
)
from app.osdi.service import BASE_PATH, MAX_PAGE_SIZE, Paging, Reader

osdi_api_token = APIKeyHeader(
    name="OSDI-API-Token",
    scheme_name="OSDI-API-Token",
    auto_error=False,
    description="A Chorus API token, as OSDI clients send it (Authorization: Bearer works too).",
)


def get_reader(
    session: SessionDep,
    bearer_token: Annotated[str | None, Depends(bearer)],
    osdi_token: Annotated[str | None, Depends(osdi_api_token)],
) -> Reader:
    """The signed-in user (401 otherwise) and the campaigns they may read."""
    user = get_current_user(session, osdi_token or bearer_token)
    return osdi_service.reader(session, user=user)


ReaderDep = Annotated[Reader, Depends(get_reader)]


def get_paging(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="From 1.")] = 1,
    per_page: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"At most {MAX_PAGE_SIZE}.")
    ] = osdi_service.DEFAULT_PAGE_SIZE,
) -> Paging:
    return Paging(page=page, per_page=per_page)


PagingDep = Annotated[Paging, Depends(get_paging)]


class HALResponse(JSONResponse):
    media_type = "application/hal+json"


def hal(document: OsdiDocument, status_code: int = 200) -> HALResponse:
    content = document.model_dump(mode="json", by_alias=True, exclude_none=True)
    return HALResponse(content, status_code=status_code)


PROBLEM: dict[str, Any] = {"model": Problem, "content": {"application/problem+json": {}}}
READ: dict[int | str, dict[str, Any]] = {401: PROBLEM, 404: PROBLEM, 422: PROBLEM}

# Every route needs a signed-in user, whatever it declares itself.
router = APIRouter(prefix=BASE_PATH, tags=["OSDI"], dependencies=[Depends(get_reader)])


@router.get("/", response_model=OsdiEntryPoint, response_class=HALResponse, responses=READ)
def entry_point(settings: SettingsDep) -> HALResponse:
    """The API entry point (AEP): links to the petitions and the people."""
    return hal(osdi_service.entry_point(settings))


@router.get("/petitions", response_model=OsdiPetitions, response_class=HALResponse, responses=READ)
def list_petitions(
    reader: ReaderDep, session: SessionDep, settings: SettingsDep, paging: PagingDep
) -> HALResponse:
    """The petitions (any status) of the campaigns you may manage, oldest first."""
    return hal(osdi_service.petitions(session, settings=settings, reader=reader, paging=paging))


@router.get(
    "/petitions/{slug}", response_model=OsdiPetition, response_class=HALResponse, responses=READ
)
def get_petition(
    slug: str, reader: ReaderDep, session: SessionDep, settings: SettingsDep
) -> HALResponse:
    """One petition, in its default language; its id is its slug."""
    return hal(osdi_service.petition(session, settings=settings, reader=reader, slug=slug))


@router.get(
    "/petitions/{slug}/signatures",
    response_model=OsdiSignatures,
    response_class=HALResponse,
    responses=READ,
)
def list_signatures(
    slug: str, reader: ReaderDep, session: SessionDep, settings: SettingsDep, paging: PagingDep
) -> HALResponse:
    """The petition's confirmed signatures (those that count), oldest first. Pending, held,
    withdrawn and invalidated signatures are not listed; anonymised ones are, without a
    person."""
    return hal(
        osdi_service.signatures(session, settings=settings, reader=reader, slug=slug, paging=paging)
    )


@router.get(
    "/petitions/{slug}/signatures/{signature_id}",
    response_model=OsdiSignature,
    response_class=HALResponse,
    responses=READ,
)
def get_signature(
    slug: str, signature_id: RowId, reader: ReaderDep, session: SessionDep, settings: SettingsDep
) -> HALResponse:
    """One confirmed signature of the petition."""
    return hal(
        osdi_service.signature(
            session, settings=settings, reader=reader, slug=slug, signature_id=signature_id
        )
    )


@router.post(
    "/petitions/{slug}/signatures",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OsdiSignatureAccepted,
    response_class=HALResponse,
    responses={**READ, 409: PROBLEM, 503: PROBLEM},
)
async def record_signature(
    slug: str, body: OsdiRecordSignature, request: Request, reader: ReaderDep, session: SessionDep
) -> Response:
    """OSDI's record signature helper: sign for the person given, exactly as the signing API
    does (abuse controls, one signature per person, and a confirmation e-mail: the signature
    counts once its signer confirms). The answer is the same whoever signs."""
    data = await run_in_threadpool(
        osdi_service.signature_to_record, session, reader=reader, slug=slug, body=body
    )
    # The signing batcher records in a transaction of its own: end this one first, or on
    # SQLite its write lock (the token's last use) would hold the batcher up.
    await run_in_threadpool(session.commit)
    # The batcher's queue, as the signing API's: no CAPTCHA, the caller is signed in.
    await asyncio.wrap_future(
        request.app.state.signing.submit(
            slug=slug,
            data=data,
            accept_language=request.headers.get("accept-language"),
            source=SigningSource(ip=request.client.host if request.client else None),
        )
    )
    return hal(osdi_service.accepted(request.app.state.settings, slug=slug), status_code=202)


@router.get("/people", response_model=OsdiPeople, response_class=HALResponse, responses=READ)
def list_people(
    reader: ReaderDep, session: SessionDep, settings: SettingsDep, paging: PagingDep
) -> HALResponse:
    """Everyone with a confirmed signature in the campaigns you may manage (one person per
    e-mail address), in the order they first signed there."""
    return hal(osdi_service.people(session, settings=settings, reader=reader, paging=paging))


@router.get(
    "/people/{person_id}",
    response_model=OsdiPerson,
    response_class=HALResponse,
    responses={
        **READ,
        301: {"description": "Another of the person's signatures: their id is in Location."},
    },
)
def get_person(
    person_id: RowId, reader: ReaderDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """One person, from their signatures in the campaigns you may manage."""
    found = osdi_service.person(session, settings=settings, reader=reader, person_id=person_id)
    if isinstance(found, int):
        return RedirectResponse(f"{BASE_PATH}/people/{found}", status_code=301)
    return hal(found)
