"""Builders for Stripe webhook events, and signing exactly as Stripe signs them.

Typical use::

    obj = completed_session(fake.sessions[session_id])
    payload = json.dumps(event("checkout.session.completed", obj)).encode()
    client.post("/webhooks/stripe", content=payload,
                headers={"Stripe-Signature": sign(payload, WEBHOOK_SECRET)})

Shapes follow the API version Chorus pins (``STRIPE_API_VERSION``, 2026): an Invoice has no
``payment_intent``, ``charge``, ``paid`` or top-level ``subscription`` (gone since 2025-03-31
"basil"); its subscription is under ``parent.subscription_details``, and the PaymentIntent that
paid it is named by an InvoicePayment (``invoice_payment.paid``). Every builder returns a fresh
plain dict, so tests can tweak fields before serialising.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import secrets
import time
from typing import Any

from app.donations.service import STRIPE_API_VERSION

__all__ = [
    "API_VERSION",
    "charge",
    "completed_session",
    "event",
    "invoice",
    "invoice_payment",
    "payment_intent",
    "sign",
    "subscription",
]

API_VERSION = STRIPE_API_VERSION


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header for ``payload``: ``t=<ts>,v1=<hex hmac-sha256>``.

    The HMAC key is the webhook secret (``whsec_...``) as UTF-8 and the message is
    ``f"{ts}.{payload}"``, the payload being the exact bytes sent as the request body.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    signed = str(ts).encode() + b"." + payload
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def event(
    type: str,
    obj: dict[str, Any],
    *,
    id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A snapshot event as Stripe POSTs it to a webhook endpoint."""
    return {
        "id": id or _id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }


def completed_session(
    session: dict[str, Any],
    *,
    payment_status: str = "paid",
    email: str = "donor@example.org",
    name: str = "Kim Min-jun",
    payment_intent: str | None = None,
    subscription: str | None = None,
    customer: str | None = None,
) -> dict[str, Any]:
    """The ``checkout.session.completed`` object for a session created on the fake.

    Like Stripe, a completed session no longer has a ``url``.
    """
    done = copy.deepcopy(session)
    done.pop("_request", None)
    done["status"] = "complete"
    done["payment_status"] = payment_status
    done["url"] = None
    done["customer"] = customer or _id("cus")
    done["customer_details"] = {
        "address": None,
        "email": email,
        "name": name,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }
    mode = done.get("mode")
    if mode == "payment":
        done["payment_intent"] = payment_intent or _id("pi")
        done["subscription"] = None
    elif mode == "subscription":
        done["subscription"] = subscription or _id("sub")
        done["payment_intent"] = None
        done["invoice"] = done.get("invoice") or _id("in")
    elif mode == "setup":
        done["setup_intent"] = done.get("setup_intent") or _id("seti")
        done["payment_intent"] = None
        done["subscription"] = None
    return done


def payment_intent(
    *,
    id: str,
    amount: int,
    currency: str,
    metadata: dict[str, str],
    status: str = "requires_payment_method",
    error: str = "Your card was declined.",
) -> dict[str, Any]:
    """A PaymentIntent; a failed one (``requires_payment_method``) carries its decline."""
    failed = status == "requires_payment_method"
    return {
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": currency,
        "metadata": dict(metadata),
        "status": status,
        "last_payment_error": {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": error,
        }
        if failed
        else None,
        "customer": None,
        "latest_charge": None,
        "description": None,
        "created": int(time.time()),
        "livemode": False,
    }


def charge(
    *,
    payment_intent: str,
    amount: int,
    currency: str,
    amount_refunded: int,
    id: str | None = None,
) -> dict[str, Any]:
    """A Charge, as in ``charge.refunded`` (fully refunded when amount_refunded >= amount)."""
    return {
        "id": id or _id("ch"),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "currency": currency,
        "payment_intent": payment_intent,
        "captured": True,
        "paid": True,
        "refunded": amount_refunded >= amount,
        "status": "succeeded",
        "metadata": {},
        "created": int(time.time()),
        "livemode": False,
    }


def invoice(
    *,
    subscription: str,
    subscription_metadata: dict[str, str],
    amount_paid: int,
    currency: str,
    customer: str = "cus_test",
    customer_email: str = "donor@example.org",
    billing_reason: str = "subscription_cycle",
    id: str | None = None,
) -> dict[str, Any]:
    """A paid subscription Invoice, as in ``invoice.paid``.

    As Stripe sends it since 2025-03-31: the subscription and its metadata under
    ``parent.subscription_details``, no ``payment_intent`` (see ``invoice_payment``), and no
    ``payments`` list (it is only included when asked for).
    """
    now = int(time.time())
    return {
        "id": id or _id("in"),
        "object": "invoice",
        "status": "paid",
        "amount_due": amount_paid,
        "amount_paid": amount_paid,
        "amount_overpaid": 0,
        "amount_remaining": 0,
        "currency": currency,
        "customer": customer,
        "customer_email": customer_email,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "parent": {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {
                "subscription": subscription,
                "metadata": dict(subscription_metadata),
            },
        },
        "status_transitions": {
            "finalized_at": now,
            "paid_at": now,
            "marked_uncollectible_at": None,
            "voided_at": None,
        },
        "metadata": {},
        "created": now,
        "period_start": now,
        "period_end": now,
        "livemode": False,
    }


def invoice_payment(
    *,
    invoice: str,
    payment_intent: str,
    amount_paid: int,
    currency: str,
    status: str = "paid",
    id: str | None = None,
) -> dict[str, Any]:
    """An InvoicePayment, as in ``invoice_payment.paid``: which PaymentIntent paid an invoice."""
    now = int(time.time())
    paid = status == "paid"
    return {
        "id": id or _id("inpay"),
        "object": "invoice_payment",
        "amount_paid": amount_paid if paid else None,
        "amount_requested": amount_paid,
        "created": now,
        "currency": currency,
        "invoice": invoice,
        "is_default": True,
        "livemode": False,
        "payment": {"type": "payment_intent", "payment_intent": payment_intent},
        "status": status,
        "status_transitions": {"canceled_at": None, "paid_at": now if paid else None},
    }


def subscription(
    *,
    id: str,
    metadata: dict[str, str],
    status: str = "canceled",
    customer: str = "cus_test",
) -> dict[str, Any]:
    """A Subscription, as in ``customer.subscription.deleted`` (default status canceled)."""
    now = int(time.time())
    canceled = status == "canceled"
    return {
        "id": id,
        "object": "subscription",
        "customer": customer,
        "metadata": dict(metadata),
        "status": status,
        "cancel_at_period_end": False,
        "canceled_at": now if canceled else None,
        "ended_at": now if canceled else None,
        "created": now,
        "items": {"object": "list", "data": [], "has_more": False, "url": "/v1/subscription_items"},
        "livemode": False,
    }
