"""Supporters' data rights through the JSON API: withdraw, stop updates, download."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField

from app.core.deps import SessionDep, SettingsDep
from app.core.errors import Problem
from app.core.http import json_response
from app.rights import service as rights_service
from app.rights.service import SignatureExport

router = APIRouter(tags=["data rights"])

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}
TOKEN_PROBLEMS: dict[int | str, dict[str, object]] = {
    400: PROBLEM,
    404: PROBLEM,
    410: PROBLEM,
    422: PROBLEM,
}


class ManageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = PydanticField(max_length=500, description="The token of a manage link.")


class WithdrawResult(BaseModel):
    status: Literal["withdrawn", "already_withdrawn"]
    petition: str
    signature_count: int


class ConsentResult(BaseModel):
    status: Literal["consent_withdrawn", "already_withdrawn"]
    petition: str
    consent_updates: Literal[False] = False


@router.post(
    "/signatures/manage/withdraw",
    response_model=WithdrawResult,
    responses={**TOKEN_PROBLEMS, 409: PROBLEM},
)
def withdraw_signature(
    body: ManageRequest, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Withdraw a signature (pending or confirmed); it stops counting at once. Idempotent.

    The token is the one in the "manage my signature" link of any e-mail to the signer.
    409 when the signature's personal data was already removed (retention).
    """
    result = rights_service.withdraw(session, token=body.token, settings=settings)
    return json_response(
        WithdrawResult(
            status="withdrawn" if result.newly_withdrawn else "already_withdrawn",
            petition=result.petition.slug,
            signature_count=result.signature_count,
        )
    )


@router.post(
    "/signatures/manage/consent/withdraw",
    response_model=ConsentResult,
    responses={**TOKEN_PROBLEMS, 409: PROBLEM},
)
def withdraw_consent(
    body: ManageRequest, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Stop campaign updates to this signer (also for a withdrawn signature). Idempotent."""
    result = rights_service.withdraw_consent(session, token=body.token, settings=settings)
    return json_response(
        ConsentResult(
            status="consent_withdrawn" if result.changed else "already_withdrawn",
            petition=result.petition.slug,
        )
    )


@router.post("/signatures/manage/export", response_model=SignatureExport, responses=TOKEN_PROBLEMS)
def export_signature(
    body: ManageRequest, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Everything Chorus holds about this signature, as a JSON attachment."""
    data = rights_service.export(session, token=body.token, settings=settings)
    response = json_response(data)
    response.headers.update(download_headers(data))
    return response


def download_headers(data: SignatureExport) -> dict[str, str]:
    filename = rights_service.export_filename(data.signature.id)
    return {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
    }
