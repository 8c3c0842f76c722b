"""Signing and confirming through the JSON API."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse

from app.abuse import service as abuse_service
from app.abuse.service import SigningSource
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import Problem
from app.core.http import json_response
from app.core.i18n import negotiate
from app.petitions import service as petition_service
from app.signatures import service as signature_service
from app.signatures.models import ConfirmRequest, ConfirmResult, SignatureAccepted, SignatureCreate

router = APIRouter(tags=["signatures"])

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}


@router.post(
    "/petitions/{slug}/signatures",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SignatureAccepted,
    responses={404: PROBLEM, 409: PROBLEM, 422: PROBLEM},
)
def sign_petition(
    slug: str, body: SignatureCreate, request: Request, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Sign a petition. The signature counts once its e-mail address is confirmed.

    The answer is the same whether or not this address has signed before.
    """
    petition = petition_service.get_public(
        session, slug=slug, cache_seconds=request.app.state.settings.CACHE_SECONDS
    )
    petition_service.ensure_accepting(petition)
    locale = negotiate(
        query=body.locale,
        accept_language=request.headers.get("accept-language"),
        available=petition.locales,
        default=petition.default_locale,
    )
    ip = request.client.host if request.client else None
    abuse_service.check_captcha(settings, token=body.captcha_token, ip=ip)
    signature_service.sign(
        session,
        petition=petition,
        data=body,
        locale=locale,
        settings=settings,
        source=SigningSource(ip=ip),
    )
    return json_response(SignatureAccepted(), status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/signatures/confirm",
    response_model=ConfirmResult,
    responses={400: PROBLEM, 409: PROBLEM, 410: PROBLEM, 422: PROBLEM},
)
def confirm_signature(
    body: ConfirmRequest, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Confirm a signature with the token from the confirmation e-mail. Idempotent."""
    result = signature_service.confirm(session, token=body.token, settings=settings)
    return json_response(
        ConfirmResult(
            status="confirmed" if result.newly_confirmed else "already_confirmed",
            petition=result.petition.slug,
            signature_count=result.signature_count,
        )
    )
