"""Signing and confirming through the JSON API."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse, Response

from app.abuse.service import SigningSource
from app.core.deps import SettingsDep, in_transaction
from app.core.errors import Problem
from app.core.http import json_response
from app.signatures import fastpath
from app.signatures import service as signature_service
from app.signatures.models import ConfirmRequest, ConfirmResult, SignatureAccepted, SignatureCreate

router = APIRouter(tags=["signatures"])

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}


@router.post(
    "/petitions/{slug}/signatures",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SignatureAccepted,
    responses={404: PROBLEM, 409: PROBLEM, 422: PROBLEM, 503: PROBLEM},
)
async def sign_petition(slug: str, body: SignatureCreate, request: Request) -> Response:
    """Sign a petition. The signature counts once its e-mail address is confirmed.

    The answer is the same whether or not this address has signed before. It comes once the
    signature is committed (several concurrent signatures share a commit: app/signatures/batch;
    valid requests are answered before routing: app/signatures/fastpath).
    """
    await request.app.state.signing.sign(
        slug=slug,
        data=body,
        accept_language=request.headers.get("accept-language"),
        source=SigningSource(ip=request.client.host if request.client else None),
    )
    return Response(fastpath.ACCEPTED, status_code=202, media_type="application/json")


@router.post(
    "/signatures/confirm",
    response_model=ConfirmResult,
    responses={400: PROBLEM, 409: PROBLEM, 410: PROBLEM, 422: PROBLEM},
)
async def confirm_signature(
    body: ConfirmRequest, request: Request, settings: SettingsDep
) -> JSONResponse:
    """Confirm a signature with the token from the confirmation e-mail. Idempotent."""
    result = await in_transaction(
        request,
        lambda session: signature_service.confirm(session, token=body.token, settings=settings),
    )
    return json_response(
        ConfirmResult(
            status="confirmed" if result.newly_confirmed else "already_confirmed",
            petition=result.petition.slug,
            signature_count=result.signature_count,
        )
    )
