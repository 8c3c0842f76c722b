"""Stripe's webhooks: verify, check the shape, store once, apply.

Each signed event is stored in `stripe_event` by its id, so a redelivery is a no-op. Before
anything reads it, the event and the object of each type Chorus acts on are validated against
the models in stripe_shapes.py; a signed event of another shape is answered 400 and kept with
status `rejected` and the reason, so someone can look at it (and a redelivery, once Chorus
understands it, is applied).

Money is recorded in `donation_payment`, one row per payment: a one-off gift's row is keyed by
its PaymentIntent, one month of a monthly gift by its invoice (Stripe's 2025+ API: an invoice
has no `payment_intent`; its InvoicePayment, in `invoice_payment.paid`, names it). Refunds
(`charge.refunded`) name the PaymentIntent and find the row through `stripe_payment_intent_id`.
Events arrive in any order: amounts only grow and a status only moves forward, so a late event
cannot undo a later one, and a refund seen before its payment is folded in when the payment
arrives.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe
from pydantic import BaseModel, ValidationError
from sqlalchemy import case, delete, func, or_, update
from sqlmodel import Session, col, select

from app.core.config import Settings
from app.core.db import dialect_insert, utcnow
from app.core.errors import ProblemError
from app.donations.models import (
    Donation,
    DonationPayment,
    DonationStatus,
    DonorContact,
    Frequency,
    StripeEvent,
    StripeEventStatus,
)
from app.donations.service import advance
from app.donations.stripe_shapes import (
    Charge,
    CheckoutSession,
    Event,
    Invoice,
    InvoicePayment,
    PaymentIntent,
    Subscription,
)
from app.email import outbox
from app.signatures import service as signature_service
from app.webhooks import payloads as webhook_payloads
from app.webhooks import service as webhook_service

log = logging.getLogger(__name__)


def verify_event(settings: Settings, *, payload: bytes, signature: str | None) -> Any:
    """Check Stripe's signature on the raw body; return the body parsed as JSON (any shape).

    An empty webhook secret refuses everything: an unconfigured site must not accept events.
    """
    secret = settings.STRIPE_WEBHOOK_SECRET.get_secret_value()
    if not secret:
        raise ProblemError(400, "webhook-not-configured", "Webhooks are not configured")
    if not signature:
        raise ProblemError(400, "webhook-signature", "Missing Stripe-Signature header")
    try:
        text = payload.decode("utf-8")
        # Only the signature: stripe.Webhook.construct_event would also build a stripe.Event,
        # which fails in its own ways on a body that is not an event.
        stripe.WebhookSignature.verify_header(
            text, signature, secret, tolerance=stripe.Webhook.DEFAULT_TOLERANCE
        )
    except stripe.SignatureVerificationError:
        raise ProblemError(400, "webhook-signature", "Invalid webhook signature") from None
    except UnicodeDecodeError:
        raise ProblemError(400, "webhook-payload", "The webhook body is not UTF-8") from None
    try:
        return json.loads(text)
    except ValueError:
        raise ProblemError(400, "webhook-payload", "The webhook body is not valid JSON") from None


@dataclass(frozen=True)
class Received:
    """What became of a signed event: `rejected` is the reason it was refused (answer 400)."""

    duplicate: bool
    rejected: str | None = None


Handler = Callable[[Session, Any, Event], None]


def _describe(exc: ValidationError, prefix: str) -> str:
    problems = [
        f"{prefix}{'.'.join(str(part) for part in error['loc']) or '(body)'}: {error['msg']}"
        for error in exc.errors()[:5]
    ]
    return "; ".join(problems)[:2000]


def _parse(raw: Any) -> tuple[Event | None, BaseModel | None, str | None]:
    """(event, its object, None) or (event or None, None, why it does not fit)."""
    try:
        event = Event.model_validate(raw)
    except ValidationError as exc:
        return None, None, _describe(exc, "")
    entry = HANDLERS.get(event.type)
    if entry is None:
        return event, None, None
    shape, _ = entry
    try:
        return event, shape.model_validate(event.data.object), None
    except ValidationError as exc:
        return event, None, _describe(exc, "data.object.")


def _storage_id(raw: Any, payload: bytes) -> str:
    given = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(given, str) and 0 < len(given) <= 255:
        return given
    return "unreadable:" + hashlib.sha256(payload).hexdigest()


def record_event(session: Session, *, event: Any, payload: bytes) -> Received:
    """Store a verified event once and, if it has the expected shape, apply it, in the caller's
    transaction (which is committed even when the event is rejected, to keep it).

    A redelivery (or a concurrent duplicate) does nothing: the insert does nothing on conflict.
    A redelivery of an event rejected earlier is checked again and applied if it now fits.
    """
    parsed, obj, reason = _parse(event)
    raw = event if isinstance(event, dict) else {}
    created = raw.get("created")
    if reason is not None:
        status = StripeEventStatus.rejected
        log.warning("Stripe event refused: %s", reason)
    else:
        status = StripeEventStatus.applied if obj is not None else StripeEventStatus.ignored
    event_id = parsed.id if parsed is not None else _storage_id(event, payload)
    insert = dialect_insert(session)
    stored = session.execute(
        insert(StripeEvent)
        .values(
            id=event_id,
            type=parsed.type if parsed else str(raw.get("type") or "")[:100],
            created=parsed.created
            if parsed
            else (created if type(created) is int and 0 <= created < 2**62 else None),
            payload=event,
            status=status,
            reason=reason,
            received_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(col(StripeEvent.id))
    ).scalar_one_or_none()
    if reason is not None:
        return Received(duplicate=stored is None, rejected=reason)
    assert parsed is not None
    if stored is None:
        # Received before; apply it now only if it was refused then (and fits now).
        retried = session.execute(
            update(StripeEvent)
            .where(
                col(StripeEvent.id) == event_id,
                col(StripeEvent.status) == StripeEventStatus.rejected,
            )
            .values(status=status, reason=None)
            .returning(col(StripeEvent.id))
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        if retried is None:
            return Received(duplicate=True)
    if obj is not None:
        HANDLERS[parsed.type][1](session, obj, parsed)
    return Received(duplicate=stored is None)


# --- applying ---------------------------------------------------------------------------------


def _by_ref(session: Session, ref: object) -> Donation | None:
    if not isinstance(ref, str):
        return None
    return session.exec(select(Donation).where(Donation.ref == ref)).first()


def _event_time(event: Event) -> datetime:
    return datetime.fromtimestamp(event.created, UTC) if event.created else utcnow()


def _contact(*, name: str | None, email: str | None) -> DonorContact:
    """The donor's name and address from Stripe, each kept only if it is safe to use (both go
    into the receipt's To: header); an unusable one is dropped, the payment is not."""
    kept = DonorContact()
    for field, value in (("name", name), ("email", email)):
        try:
            kept = kept.model_copy(
                update={field: getattr(DonorContact.model_validate({field: value}), field)}
            )
        except ValidationError:
            log.warning("Stripe sent a donor %s that cannot be used; it is not kept", field)
    return kept


def _record_payment(
    session: Session,
    *,
    donation: Donation | None,
    key: str,
    amount: int,
    currency: str,
    paid_at: datetime | None,
    invoice: str | None = None,
    payment_intent: str | None = None,
    refunded: int = 0,
) -> None:
    """Upsert the payment under its Stripe key; amounts only grow, whatever the event order."""
    insert = dialect_insert(session)
    stmt = insert(DonationPayment).values(
        stripe_key=key,
        stripe_payment_intent_id=payment_intent,
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
                "stripe_payment_intent_id": func.coalesce(
                    table.stripe_payment_intent_id, excluded.stripe_payment_intent_id
                ),
            },
        )
    )
    if payment_intent and payment_intent != key:
        _fold_early_refund(session, key=key, payment_intent=payment_intent)
    if donation is not None and paid_at is not None:
        outbox.enqueue(
            session,
            kind="donation_receipt",
            payload={"payment": key},
            dedup_key=f"donation-receipt:{key}",
            recipient=donation.email,
        )
        webhook_service.emit(
            session,
            campaign_id=donation.campaign_id,
            event="donation.paid",
            subject=f"donation:{donation.id}",
            key=f"payment:{key}",
            data=webhook_payloads.donation(
                donation, amount=amount, refunded=refunded, currency=currency
            ),
        )


def _fold_early_refund(session: Session, *, key: str, payment_intent: str) -> None:
    """A refund seen before the payment it refunds was kept under its PaymentIntent; now that
    the payment (keyed by its invoice) names that PaymentIntent, move the refund onto it."""
    early = session.exec(
        select(DonationPayment)
        .where(DonationPayment.stripe_key == payment_intent)
        .execution_options(populate_existing=True)
    ).first()
    if early is None or early.stripe_invoice_id is not None:
        return
    table = DonationPayment.__table__.c  # type: ignore[attr-defined]
    session.execute(
        update(DonationPayment)
        .where(col(DonationPayment.stripe_key) == key)
        .values(
            amount_refunded=case(
                (table.amount_refunded < early.amount_refunded, early.amount_refunded),
                else_=table.amount_refunded,
            )
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(DonationPayment)
        .where(col(DonationPayment.stripe_key) == payment_intent)
        .execution_options(synchronize_session=False)
    )


def _link_supporter(session: Session, donation: Donation) -> None:
    if donation.email and donation.signature_id is None:
        signature_id = signature_service.find_in_campaign(
            session, campaign_id=donation.campaign_id, email=donation.email
        )
        if signature_id is not None:
            donation.signature_id = signature_id


def _on_checkout_completed(session: Session, obj: CheckoutSession, event: Event) -> None:
    ref = (obj.metadata or {}).get("donation") or obj.client_reference_id
    donation = _by_ref(session, ref)
    if donation is None:
        log.warning("checkout %s names no known donation", obj.id)
        return
    details = obj.customer_details
    contact = _contact(
        name=details.name if details else None, email=details.email if details else None
    )
    donation.email = donation.email or contact.email
    donation.name = donation.name or contact.name
    donation.stripe_checkout_session_id = obj.id
    donation.stripe_customer_id = obj.customer or donation.stripe_customer_id
    _link_supporter(session, donation)
    session.flush()
    if obj.mode == "subscription":
        donation.stripe_subscription_id = obj.subscription
        session.flush()
        advance(session, ref=donation.ref, status=DonationStatus.active)
        return  # each month's money arrives with invoice.paid
    donation.stripe_payment_intent_id = obj.payment_intent
    session.flush()
    if obj.payment_status in ("paid", "no_payment_required"):
        key = obj.payment_intent or obj.id
        _record_payment(
            session,
            donation=donation,
            key=key,
            payment_intent=obj.payment_intent,
            amount=donation.amount if obj.amount_total is None else obj.amount_total,
            currency=obj.currency or donation.currency,
            paid_at=_event_time(event),
        )
        advance(session, ref=donation.ref, status=DonationStatus.paid)
        _refund_status(session, key)
    else:
        advance(session, ref=donation.ref, status=DonationStatus.processing)


def _on_async_succeeded(session: Session, obj: CheckoutSession, event: Event) -> None:
    _on_checkout_completed(session, obj.model_copy(update={"payment_status": "paid"}), event)


def _on_async_failed(session: Session, obj: CheckoutSession, event: Event) -> None:
    donation = _by_ref(session, (obj.metadata or {}).get("donation") or obj.client_reference_id)
    if donation is not None:
        advance(session, ref=donation.ref, status=DonationStatus.failed)


def _on_payment_failed(session: Session, obj: PaymentIntent, event: Event) -> None:
    donation = _by_ref(session, (obj.metadata or {}).get("donation"))
    if donation is not None:
        advance(session, ref=donation.ref, status=DonationStatus.failed)


def _on_charge_refunded(session: Session, obj: Charge, event: Event) -> None:
    intent = obj.payment_intent
    if intent is None:
        return
    # The payment this refunds: a one-off gift's (keyed by the PaymentIntent) or one month of a
    # monthly gift (keyed by its invoice, which learnt the PaymentIntent).
    existing = session.exec(
        select(DonationPayment)
        .where(
            or_(
                col(DonationPayment.stripe_key) == intent,
                col(DonationPayment.stripe_payment_intent_id) == intent,
            )
        )
        .order_by(col(DonationPayment.paid_at).is_(None), col(DonationPayment.id))
    ).first()
    donation = None
    if existing is None or existing.donation_id is None:
        # Before its payment: remember the refund under the PaymentIntent; the payment's own
        # event fills in (or folds it into) the rest.
        donation = (
            _by_ref(session, (obj.metadata or {}).get("donation"))
            or session.exec(
                select(Donation).where(Donation.stripe_payment_intent_id == intent)
            ).first()
        )
    key = existing.stripe_key if existing is not None else intent
    _record_payment(
        session,
        donation=donation,
        key=key,
        payment_intent=intent,
        amount=obj.amount,
        currency=obj.currency,
        paid_at=None,
        refunded=obj.amount_refunded,
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
    if donation is not None and payment.amount_refunded > 0:
        webhook_service.emit(
            session,
            campaign_id=donation.campaign_id,
            event="donation.refunded",
            subject=f"donation:{donation.id}",
            key=f"refund:{key}:{payment.amount_refunded}",
            data=webhook_payloads.donation(
                donation,
                amount=payment.amount,
                refunded=payment.amount_refunded,
                currency=payment.currency,
            ),
        )
    if (
        donation is not None
        and donation.frequency == Frequency.once
        and payment.amount_refunded >= payment.amount > 0
    ):
        advance(session, ref=donation.ref, status=DonationStatus.refunded)


def _on_invoice_paid(session: Session, obj: Invoice, event: Event) -> None:
    subscription = obj.subscription_id
    donation = _by_ref(session, obj.subscription_metadata.get("donation"))
    if donation is None and subscription:
        donation = session.exec(
            select(Donation).where(Donation.stripe_subscription_id == subscription)
        ).first()
    if donation is None:
        log.warning("invoice %s names no known donation", obj.id)
        return
    if subscription and not donation.stripe_subscription_id:
        donation.stripe_subscription_id = subscription
    donation.stripe_customer_id = donation.stripe_customer_id or obj.customer
    donation.email = donation.email or _contact(name=None, email=obj.customer_email).email
    session.flush()
    _record_payment(
        session,
        donation=donation,
        key=obj.id,
        invoice=obj.id,
        payment_intent=obj.payment_intent_id,
        amount=obj.amount_paid,
        currency=obj.currency,
        paid_at=_event_time(event),
    )
    advance(session, ref=donation.ref, status=DonationStatus.active)


def _on_invoice_payment_paid(session: Session, obj: InvoicePayment, event: Event) -> None:
    """Which PaymentIntent paid an invoice: what a later refund of that month refers to.

    Whether it comes before or after `invoice.paid`, both land on the row keyed by the invoice;
    `invoice.paid` says whose gift it is (and sends the receipt).
    """
    if obj.status != "paid":
        return
    _record_payment(
        session,
        donation=None,
        key=obj.invoice,
        invoice=obj.invoice,
        payment_intent=obj.payment.payment_intent,
        amount=obj.amount_paid or 0,
        currency=obj.currency,
        paid_at=None,
    )


def _on_subscription_deleted(session: Session, obj: Subscription, event: Event) -> None:
    donation = (
        _by_ref(session, (obj.metadata or {}).get("donation"))
        or session.exec(select(Donation).where(Donation.stripe_subscription_id == obj.id)).first()
    )
    if donation is not None:
        advance(session, ref=donation.ref, status=DonationStatus.cancelled)


# The event types Chorus acts on: the shape their object must have, and what to do.
HANDLERS: dict[str, tuple[type[BaseModel], Handler]] = {
    "checkout.session.completed": (CheckoutSession, _on_checkout_completed),
    "checkout.session.async_payment_succeeded": (CheckoutSession, _on_async_succeeded),
    "checkout.session.async_payment_failed": (CheckoutSession, _on_async_failed),
    "payment_intent.payment_failed": (PaymentIntent, _on_payment_failed),
    "charge.refunded": (Charge, _on_charge_refunded),
    "invoice.paid": (Invoice, _on_invoice_paid),
    "invoice_payment.paid": (InvoicePayment, _on_invoice_payment_paid),
    "customer.subscription.deleted": (Subscription, _on_subscription_deleted),
}
