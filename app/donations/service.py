"""Donations: starting a Stripe Checkout, and recording what Stripe's webhooks report."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import stripe
from sqlalchemy import Engine, case, func, update
from sqlmodel import Session, col, select

from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.db import dialect_insert, session_scope, utcnow
from app.core.errors import FieldError, ProblemError
from app.donations.currencies import CURRENCIES
from app.donations.models import (
    STATUS_RANK,
    CurrencyTotal,
    Donation,
    DonationCreate,
    DonationPayment,
    DonationStatus,
    Frequency,
    StripeEvent,
)
from app.email import service as email_service
from app.petitions.service import SLUG_RE
from app.signatures import service as signature_service

log = logging.getLogger(__name__)


def _field_problem(field: str, type_: str, message: str) -> ProblemError:
    return ProblemError(
        422,
        "validation",
        "Your request has invalid fields",
        message,
        errors=[FieldError(field=field, type=type_, message=message)],
    )


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
        raise _field_problem(
            "currency", "currency_not_accepted", f"This campaign accepts {', '.join(accepted)}"
        )
    rules = CURRENCIES[currency]
    if amount < rules.minimum:
        raise _field_problem(
            "amount", "amount_too_small", f"The smallest gift is {rules.format(rules.minimum)}"
        )
    if amount > rules.maximum:
        raise _field_problem(
            "amount",
            "amount_too_large",
            f"The largest gift online is {rules.format(rules.maximum)}",
        )


# The Stripe API version Chorus is written for, sent with every request (the Stripe-Version
# header) so that an upgrade of the stripe package or of the account's default version cannot
# change the shapes Chorus reads. Create the webhook endpoint with this version too: events are
# rendered in the endpoint's version. Since 2025-03-31 ("basil") an invoice has no
# `payment_intent`: its money is in InvoicePayments (`invoice_payment.paid`).
STRIPE_API_VERSION = "2026-10-28.endive"


@lru_cache(maxsize=8)
def _stripe_client(api_key: str, api_base: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        max_network_retries=1,
        stripe_version=STRIPE_API_VERSION,
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
    return _stripe_client(key, settings.STRIPE_API_BASE)


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
            _advance(session, ref=ref, status=DonationStatus.failed)
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


# --- webhooks ---------------------------------------------------------------------------------


def verify_event(settings: Settings, *, payload: bytes, signature: str | None) -> dict[str, Any]:
    """Check Stripe's signature on the raw body; return the event as a plain dict.

    An empty webhook secret refuses everything: an unconfigured site must not accept events.
    """
    secret = settings.STRIPE_WEBHOOK_SECRET.get_secret_value()
    if not secret:
        raise ProblemError(400, "webhook-not-configured", "Webhooks are not configured")
    if not signature:
        raise ProblemError(400, "webhook-signature", "Missing Stripe-Signature header")
    try:
        stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError:
        raise ProblemError(400, "webhook-signature", "Invalid webhook signature") from None
    except ValueError:
        raise ProblemError(400, "webhook-payload", "The webhook body is not valid JSON") from None
    event: dict[str, Any] = json.loads(payload)
    if not isinstance(event.get("id"), str) or not isinstance(event.get("data"), dict):
        raise ProblemError(400, "webhook-payload", "The webhook body is not a Stripe event")
    return event


def record_event(session: Session, *, event: dict[str, Any]) -> bool:
    """Store a verified event once and apply it, in the caller's transaction.

    Returns False for an event already received (a redelivery or a concurrent duplicate): the
    insert does nothing on conflict, and nothing is applied twice.
    """
    insert = dialect_insert(session)
    stored = session.execute(
        insert(StripeEvent)
        .values(
            id=event["id"],
            type=str(event.get("type", "")),
            created=int(event.get("created") or 0),
            payload=event,
            received_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(col(StripeEvent.id))
    ).scalar_one_or_none()
    if stored is None:
        return False
    handler = HANDLERS.get(str(event.get("type")))
    if handler is not None:
        handler(session, event["data"]["object"], event)
    return True


def _by_ref(session: Session, ref: object) -> Donation | None:
    if not isinstance(ref, str):
        return None
    return session.exec(select(Donation).where(Donation.ref == ref)).first()


def _metadata_ref(obj: dict[str, Any]) -> object:
    metadata = obj.get("metadata") or {}
    return metadata.get("donation") if isinstance(metadata, dict) else None


def _advance(session: Session, *, ref: str, status: DonationStatus, **values: Any) -> None:
    """Move a donation to `status` unless it is already at that rank or beyond."""
    rank = case(STATUS_RANK, value=col(Donation.status), else_=0)
    session.execute(
        update(Donation)
        .where(col(Donation.ref) == ref, rank < STATUS_RANK[status])
        .values(status=status, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if values:
        session.execute(
            update(Donation)
            .where(col(Donation.ref) == ref)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _event_time(event: dict[str, Any]) -> datetime:
    created = event.get("created")
    return datetime.fromtimestamp(int(created), UTC) if created else utcnow()


def _record_payment(
    session: Session,
    *,
    donation: Donation | None,
    key: str,
    amount: int,
    currency: str,
    paid_at: datetime | None,
    invoice: str | None = None,
    refunded: int = 0,
) -> None:
    """Upsert the payment under its Stripe key; amounts only grow, whatever the event order."""
    insert = dialect_insert(session)
    stmt = insert(DonationPayment).values(
        stripe_key=key,
        donation_id=donation.id if donation else None,
        campaign_id=donation.campaign_id if donation else None,
        amount=amount,
        amount_refunded=refunded,
        currency=currency.upper(),
        stripe_invoice_id=invoice,
        paid_at=paid_at,
        created_at=utcnow(),
    )
    table = DonationPayment.__table__.c  # type: ignore[attr-defined]
    excluded = stmt.excluded
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["stripe_key"],
            set_={
                "donation_id": func.coalesce(table.donation_id, excluded.donation_id),
                "campaign_id": func.coalesce(table.campaign_id, excluded.campaign_id),
                "amount": case(
                    (excluded.amount > table.amount, excluded.amount), else_=table.amount
                ),
                "amount_refunded": case(
                    (excluded.amount_refunded > table.amount_refunded, excluded.amount_refunded),
                    else_=table.amount_refunded,
                ),
                "paid_at": func.coalesce(table.paid_at, excluded.paid_at),
                "stripe_invoice_id": func.coalesce(
                    table.stripe_invoice_id, excluded.stripe_invoice_id
                ),
            },
        )
    )
    if donation is not None and paid_at is not None:
        email_service.enqueue(
            session,
            kind="donation_receipt",
            payload={"payment": key},
            dedup_key=f"donation-receipt:{key}",
            recipient=donation.email,
        )


def _link_supporter(session: Session, donation: Donation) -> None:
    if donation.email and donation.signature_id is None:
        signature_id = signature_service.find_in_campaign(
            session, campaign_id=donation.campaign_id, email=donation.email
        )
        if signature_id is not None:
            donation.signature_id = signature_id


def _on_checkout_completed(session: Session, obj: dict[str, Any], event: dict[str, Any]) -> None:
    donation = _by_ref(session, _metadata_ref(obj) or obj.get("client_reference_id"))
    if donation is None:
        log.warning("checkout %s names no known donation", obj.get("id"))
        return
    details = obj.get("customer_details") or {}
    donation.email = donation.email or details.get("email")
    donation.name = donation.name or details.get("name")
    donation.stripe_checkout_session_id = obj.get("id")
    donation.stripe_customer_id = obj.get("customer") or donation.stripe_customer_id
    _link_supporter(session, donation)
    session.flush()
    if obj.get("mode") == "subscription":
        donation.stripe_subscription_id = obj.get("subscription")
        session.flush()
        _advance(session, ref=donation.ref, status=DonationStatus.active)
        return  # each month's money arrives as invoice.paid
    donation.stripe_payment_intent_id = obj.get("payment_intent")
    session.flush()
    if obj.get("payment_status") in ("paid", "no_payment_required"):
        _pay_once(session, donation, obj, event)
    else:
        _advance(session, ref=donation.ref, status=DonationStatus.processing)


def _pay_once(
    session: Session, donation: Donation, obj: dict[str, Any], event: dict[str, Any]
) -> None:
    key = obj.get("payment_intent") or obj["id"]
    _record_payment(
        session,
        donation=donation,
        key=key,
        amount=int(obj.get("amount_total") or donation.amount),
        currency=str(obj.get("currency") or donation.currency),
        paid_at=_event_time(event),
    )
    _advance(session, ref=donation.ref, status=DonationStatus.paid)
    _refund_status(session, key)


def _on_async_succeeded(session: Session, obj: dict[str, Any], event: dict[str, Any]) -> None:
    _on_checkout_completed(session, {**obj, "payment_status": "paid"}, event)


def _on_async_failed(session: Session, obj: dict[str, Any], event: dict[str, Any]) -> None:
    donation = _by_ref(session, _metadata_ref(obj) or obj.get("client_reference_id"))
    if donation is not None:
        _advance(session, ref=donation.ref, status=DonationStatus.failed)


def _on_payment_failed(session: Session, obj: dict[str, Any], event: dict[str, Any]) -> None:
    donation = _by_ref(session, _metadata_ref(obj))
    if donation is not None:
        _advance(session, ref=donation.ref, status=DonationStatus.failed)


def _on_charge_refunded(session: Session, obj: dict[str, Any], event: dict[str, Any]) -> None:
    key = obj.get("payment_intent")
    if not isinstance(key, str):
        return
    # The refund may arrive before the payment it refunds: record it under the same key, and
    # the payment's own event fills in the rest.
    existing = session.exec(
        select(DonationPayment).where(DonationPayment.stripe_key == key)
    ).first()
    donation = None
    if existing is None or existing.donation_id is None:
        donation = (
            _by_ref(session, _metadata_ref(obj))
            or session.exec(
                select(Donation).where(Donation.stripe_payment_intent_id == key)
            ).first()
        )
    _record_payment(
        session,
        donation=donation,
        key=key,
        amount=int(obj.get("amount") or 0),
        currency=str(obj.get("currency") or ""),
        paid_at=None,
        refunded=int(obj.get("amount_refunded") or 0),
    )
    _refund_status(session, key)


def _refund_status(session: Session, key: str) -> None:
    payment = session.exec(
        select(DonationPayment)
        .where(DonationPayment.stripe_key == key)
        .execution_options(populate_existing=True)
    ).first()
    if payment is None or payment.donation_id is None or payment.paid_at is None:
        return
    donation = session.get(Donation, payment.donation_id)
    if (
        donation is not None
        and donation.frequency == Frequency.once
        and payment.amount_refunded >= payment.amount > 0
    ):
        _advance(session, ref=donation.ref, status=DonationStatus.refunded)


def _subscription_of(obj: dict[str, Any]) -> tuple[str | None, object]:
    parent = obj.get("parent") or {}
    details = parent.get("subscription_details") or {} if isinstance(parent, dict) else {}
    subscription = details.get("subscription") or obj.get("subscription")
    metadata = details.get("metadata") or obj.get("subscription_details", {}).get("metadata") or {}
    return subscription, metadata.get("donation") if isinstance(metadata, dict) else None


def _on_invoice_paid(session: Session, obj: dict[str, Any], event: dict[str, Any]) -> None:
    subscription, ref = _subscription_of(obj)
    donation = _by_ref(session, ref)
    if donation is None and subscription:
        donation = session.exec(
            select(Donation).where(Donation.stripe_subscription_id == subscription)
        ).first()
    if donation is None:
        log.warning("invoice %s names no known donation", obj.get("id"))
        return
    if subscription and not donation.stripe_subscription_id:
        donation.stripe_subscription_id = subscription
    donation.email = donation.email or obj.get("customer_email")
    session.flush()
    key = obj.get("payment_intent") or obj["id"]
    _record_payment(
        session,
        donation=donation,
        key=key,
        amount=int(obj.get("amount_paid") or 0),
        currency=str(obj.get("currency") or donation.currency),
        paid_at=_event_time(event),
        invoice=obj.get("id"),
    )
    _advance(session, ref=donation.ref, status=DonationStatus.active)


def _on_subscription_deleted(session: Session, obj: dict[str, Any], event: dict[str, Any]) -> None:
    donation = (
        _by_ref(session, _metadata_ref(obj))
        or session.exec(
            select(Donation).where(Donation.stripe_subscription_id == obj.get("id"))
        ).first()
    )
    if donation is not None:
        _advance(session, ref=donation.ref, status=DonationStatus.cancelled)


HANDLERS = {
    "checkout.session.completed": _on_checkout_completed,
    "checkout.session.async_payment_succeeded": _on_async_succeeded,
    "checkout.session.async_payment_failed": _on_async_failed,
    "payment_intent.payment_failed": _on_payment_failed,
    "charge.refunded": _on_charge_refunded,
    "invoice.paid": _on_invoice_paid,
    "customer.subscription.deleted": _on_subscription_deleted,
}


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
