"""Donations: starting a Stripe Checkout, reading the totals. Webhooks are in webhooks.py."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import stripe
from sqlalchemy import Engine, case, func, update
from sqlmodel import Session, col, select

from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.db import session_scope, utcnow
from app.core.errors import ProblemError, field_problem
from app.donations.currencies import CURRENCIES
from app.donations.models import (
    STATUS_RANK,
    CurrencyTotal,
    Donation,
    DonationCreate,
    DonationPayment,
    DonationStatus,
    Frequency,
)
from app.petitions.service import SLUG_RE

log = logging.getLogger(__name__)


def get_campaign(session: Session, *, slug: str) -> Campaign:
    campaign = None
    if SLUG_RE.fullmatch(slug):
        campaign = session.exec(select(Campaign).where(Campaign.slug == slug)).first()
    if campaign is None:
        raise ProblemError(404, "campaign-not-found", "Campaign not found")
    return campaign


def check_amount(campaign: Campaign, *, amount: int, currency: str) -> None:
    """Raise a 422 problem naming the field if the amount or currency is not acceptable."""
    accepted = [c for c in campaign.currencies if c in CURRENCIES]
    if currency not in accepted:
        message = f"This campaign accepts {', '.join(accepted)}"
        raise field_problem("currency", "currency_not_accepted", message, detail=message)
    rules = CURRENCIES[currency]
    if amount < rules.minimum:
        message = f"The smallest gift is {rules.format(rules.minimum)}"
        raise field_problem("amount", "amount_too_small", message, detail=message)
    if amount > rules.maximum:
        message = f"The largest gift online is {rules.format(rules.maximum)}"
        raise field_problem("amount", "amount_too_large", message, detail=message)


# The Stripe API version Chorus is written for, sent with every request (the Stripe-Version
# header) so that an upgrade of the stripe package or of the account's default version cannot
# change the shapes Chorus reads. Create the webhook endpoint with this version too: events are
# rendered in the endpoint's version. Since 2025-03-31 ("basil") an invoice has no
# `payment_intent`: its money is in InvoicePayments (`invoice_payment.paid`).
STRIPE_API_VERSION = "2026-10-28.endive"


@lru_cache(maxsize=8)
def _stripe_client(api_key: str, api_base: str, api_version: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        max_network_retries=1,
        stripe_version=api_version,
    )


def donations_configured(settings: Settings) -> bool:
    """Whether this site can take donations at all (a Stripe secret key is set)."""
    return bool(settings.STRIPE_SECRET_KEY.get_secret_value())


def stripe_client(settings: Settings) -> stripe.StripeClient:
    key = settings.STRIPE_SECRET_KEY.get_secret_value()
    if not key:
        raise ProblemError(
            503,
            "donations-unavailable",
            "Donations are not available",
            "This site has not been set up to take donations.",
        )
    return _stripe_client(key, settings.STRIPE_API_BASE, STRIPE_API_VERSION)


@dataclass(frozen=True)
class CheckoutStarted:
    ref: str
    checkout_url: str


def start_checkout(
    engine: Engine, *, settings: Settings, campaign_slug: str, data: DonationCreate, locale: str
) -> CheckoutStarted:
    """Record a pending donation, then create its Stripe Checkout Session.

    The donation is committed before Stripe is called and the call carries an idempotency key,
    so no database transaction (or SQLite write lock) is held across the network and a retried
    call cannot create a second session.
    """
    client = stripe_client(settings)
    currency = data.currency.upper()
    ref = "don_" + secrets.token_hex(12)
    with session_scope(engine) as session:
        campaign = get_campaign(session, slug=campaign_slug)
        check_amount(campaign, amount=data.amount, currency=currency)
        assert campaign.id is not None
        session.add(
            Donation(
                ref=ref,
                campaign_id=campaign.id,
                amount=data.amount,
                currency=currency,
                frequency=data.frequency,
                email=data.email,
                name=data.name,
                locale=locale,
            )
        )
        names = campaign.translations.get(locale) or campaign.translations[campaign.default_locale]
        product = names["name"]

    metadata = {"donation": ref, "campaign": campaign_slug}
    price: dict[str, Any] = {
        "currency": currency.lower(),
        "unit_amount": data.amount,
        "product_data": {"name": product},
    }
    params: dict[str, Any] = {
        "mode": "payment" if data.frequency == Frequency.once else "subscription",
        "line_items": [{"quantity": 1, "price_data": price}],
        "success_url": settings.public_url(
            f"/campaigns/{campaign_slug}/donate/thanks?donation={ref}&lang={locale}"
        ),
        "cancel_url": settings.public_url(
            f"/campaigns/{campaign_slug}/donate?lang={locale}&cancelled=1"
        ),
        "client_reference_id": ref,
        "metadata": metadata,
        "locale": locale if locale in ("en", "ko") else "auto",
    }
    if data.email:
        params["customer_email"] = data.email
    if data.frequency == Frequency.once:
        params["submit_type"] = "donate"
        params["payment_intent_data"] = {"metadata": metadata}
    else:
        price["recurring"] = {"interval": "month"}
        params["subscription_data"] = {"metadata": metadata}
    try:
        checkout = client.v1.checkout.sessions.create(
            params=params,  # type: ignore[arg-type]
            options={"idempotency_key": f"checkout-{ref}"},
        )
    except stripe.StripeError as exc:
        log.error("Stripe refused the checkout for %s: %s", ref, exc)
        with session_scope(engine) as session:
            advance(session, ref=ref, status=DonationStatus.failed)
        raise ProblemError(
            502,
            "payment-provider-error",
            "The payment provider is unavailable",
            "Please try again in a few minutes.",
        ) from None
    with session_scope(engine) as session:
        session.execute(
            update(Donation)
            .where(col(Donation.ref) == ref)
            .values(stripe_checkout_session_id=checkout.id, updated_at=utcnow())
        )
    assert checkout.url is not None
    return CheckoutStarted(ref=ref, checkout_url=checkout.url)


def advance(session: Session, *, ref: str, status: DonationStatus) -> None:
    """Move a donation to `status` unless it is already at that rank or beyond."""
    rank = case(STATUS_RANK, value=col(Donation.status), else_=0)
    session.execute(
        update(Donation)
        .where(col(Donation.ref) == ref, rank < STATUS_RANK[status])
        .values(status=status, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


# --- reading ----------------------------------------------------------------------------------


def totals(session: Session, *, campaign_id: int) -> list[CurrencyTotal]:
    """Money received per currency: gross, refunded, net, and how many payments."""
    rows = session.execute(
        select(
            col(DonationPayment.currency),
            func.sum(DonationPayment.amount),
            func.sum(DonationPayment.amount_refunded),
            func.count(),
        )
        .where(
            DonationPayment.campaign_id == campaign_id, col(DonationPayment.paid_at).is_not(None)
        )
        .group_by(col(DonationPayment.currency))
        .order_by(col(DonationPayment.currency))
    )
    return [
        CurrencyTotal(
            currency=currency,
            gross=int(gross),
            refunded=int(refunded),
            net=int(gross) - int(refunded),
            payments=int(count),
        )
        for currency, gross, refunded, count in rows
    ]


def recent(session: Session, *, campaign_id: int, limit: int = 50) -> list[Donation]:
    """The campaign's latest gifts (any status), newest first."""
    return list(
        session.exec(
            select(Donation)
            .where(Donation.campaign_id == campaign_id)
            .order_by(col(Donation.created_at).desc(), col(Donation.id).desc())
            .limit(limit)
        )
    )
