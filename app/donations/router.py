"""Donations API: start a checkout, read totals, receive Stripe's webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, status
from fastapi.responses import JSONResponse

from app.core.deps import SessionDep, SettingsDep
from app.core.errors import PROBLEM_BASE, Problem, problem_response
from app.core.http import json_response
from app.core.i18n import SUPPORTED_LOCALES, negotiate
from app.donations import service as donation_service
from app.donations import webhooks
from app.donations.models import CheckoutCreated, DonationCreate, DonationTotals, WebhookResult

router = APIRouter(tags=["donations"])
PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}


@router.post(
    "/campaigns/{slug}/donations",
    status_code=status.HTTP_201_CREATED,
    response_model=CheckoutCreated,
    responses={404: PROBLEM, 422: PROBLEM, 502: PROBLEM, 503: PROBLEM},
)
def create_donation(
    slug: str, body: DonationCreate, request: Request, settings: SettingsDep
) -> JSONResponse:
    """Start a donation: returns the Stripe Checkout address to send the donor to.

    `amount` is in the currency's minor unit: 2500 is €25.00, and 10000 is ₩10,000 (KRW has
    no minor unit).
    """
    locale = negotiate(
        query=body.locale,
        accept_language=request.headers.get("accept-language"),
        available=SUPPORTED_LOCALES,
        default="en",
    )
    started = donation_service.start_checkout(
        request.app.state.engine, settings=settings, campaign_slug=slug, data=body, locale=locale
    )
    return json_response(
        CheckoutCreated(checkout_url=started.checkout_url, donation=started.ref),
        status_code=status.HTTP_201_CREATED,
    )


@router.get(
    "/campaigns/{slug}/donations/totals", response_model=DonationTotals, responses={404: PROBLEM}
)
def donation_totals(slug: str, session: SessionDep) -> JSONResponse:
    """Money received by the campaign per currency (refunds subtracted in `net`)."""
    campaign = donation_service.get_campaign(session, slug=slug)
    assert campaign.id is not None
    return json_response(
        DonationTotals(
            campaign=campaign.slug, totals=donation_service.totals(session, campaign_id=campaign.id)
        )
    )


async def raw_body(request: Request) -> bytes:
    """The body exactly as sent: Stripe's signature covers the raw bytes."""
    return await request.body()


@router.post("/stripe/webhook", response_model=WebhookResult, responses={400: PROBLEM})
def stripe_webhook(
    request: Request,
    payload: Annotated[bytes, Depends(raw_body)],
    session: SessionDep,
    settings: SettingsDep,
    stripe_signature: Annotated[str | None, Header(max_length=2000)] = None,
) -> JSONResponse:
    """Stripe's webhook. Verified, shape-checked, stored once by event id, applied once.

    A signed event whose shape is not the expected one is answered 400 and kept (returned,
    not raised, so the request's transaction commits it).
    """
    event = webhooks.verify_event(settings, payload=payload, signature=stripe_signature)
    received = webhooks.record_event(session, event=event, payload=payload)
    if received.rejected is not None:
        return problem_response(
            request,
            status=400,
            title="The webhook event does not have the expected shape",
            type_=PROBLEM_BASE + "webhook-shape",
            detail=received.rejected,
        )
    return json_response(WebhookResult(duplicate=received.duplicate))
