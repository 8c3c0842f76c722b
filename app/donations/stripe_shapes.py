"""The shapes of the Stripe webhook events Chorus reads, as of STRIPE_API_VERSION.

A signed event is genuine, but not necessarily what Chorus expects: an endpoint left on another
API version, a new field type, or a bug on either side. Each event, and the object of each
event type Chorus acts on, is validated against these models before anything reads it; what
does not fit is refused (400) and kept for inspection, never half-applied.

Only the fields Chorus reads are declared (others are ignored). Amounts are strict,
non-negative integers: a signed `amount_total` of -5000 or "abc" must not lower the totals.

Since 2025-03-31 ("basil") an Invoice has no `payment_intent`, `charge`, `paid` or top-level
`subscription`: the subscription is in `parent.subscription_details`, and each payment is an
InvoicePayment (`invoice.payments`, only when included on request, and the
`invoice_payment.paid` event) whose `payment.payment_intent` is what a refund refers to.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, StringConstraints

StripeId = Annotated[StrictStr, StringConstraints(min_length=1, max_length=255)]
Amount = Annotated[StrictInt, Field(ge=0, le=10**15)]
Timestamp = Annotated[StrictInt, Field(ge=0, le=10**11)]
Currency = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z]{3}$")]
Text = Annotated[StrictStr, StringConstraints(max_length=5000)]
Metadata = dict[StrictStr, StrictStr]


class StripeShape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EventData(StripeShape):
    object: dict[str, Any]


class Event(StripeShape):
    """The envelope of every event."""

    id: StripeId
    type: Annotated[StrictStr, StringConstraints(min_length=1, max_length=100)]
    created: Timestamp
    api_version: StrictStr | None = None
    data: EventData


class CustomerDetails(StripeShape):
    email: Text | None = None
    name: Text | None = None


class CheckoutSession(StripeShape):
    id: StripeId
    mode: StrictStr
    payment_status: StrictStr | None = None
    amount_total: Amount | None = None
    currency: Currency | None = None
    metadata: Metadata | None = None
    client_reference_id: Text | None = None
    customer: StripeId | None = None
    customer_details: CustomerDetails | None = None
    payment_intent: StripeId | None = None
    subscription: StripeId | None = None


class PaymentIntent(StripeShape):
    id: StripeId
    metadata: Metadata | None = None


class Charge(StripeShape):
    id: StripeId
    payment_intent: StripeId | None = None
    amount: Amount
    amount_refunded: Amount
    currency: Currency
    metadata: Metadata | None = None


class PaymentRef(StripeShape):
    type: StrictStr
    payment_intent: StripeId | None = None


class PaymentTransitions(StripeShape):
    paid_at: Timestamp | None = None


class InvoicePayment(StripeShape):
    """One payment towards an invoice (`invoice_payment.paid`, or in `invoice.payments`)."""

    id: StripeId
    invoice: StripeId
    payment: PaymentRef
    amount_paid: Amount | None = None
    currency: Currency
    status: StrictStr
    status_transitions: PaymentTransitions | None = None


class InvoicePaymentList(StripeShape):
    data: list[InvoicePayment]


class SubscriptionDetails(StripeShape):
    subscription: StripeId | None = None
    metadata: Metadata | None = None


class InvoiceParent(StripeShape):
    subscription_details: SubscriptionDetails | None = None


class Invoice(StripeShape):
    id: StripeId
    amount_paid: Amount
    currency: Currency
    customer: StripeId | None = None
    customer_email: Text | None = None
    parent: InvoiceParent | None = None
    # Only present when the invoice was fetched with `payments` included.
    payments: InvoicePaymentList | None = None
    # An endpoint still on an API version before 2025-03-31 sends these instead.
    payment_intent: StripeId | None = None
    subscription: StripeId | None = None
    subscription_details: SubscriptionDetails | None = None

    @property
    def subscription_id(self) -> str | None:
        details = self.parent.subscription_details if self.parent else None
        return (details.subscription if details else None) or self.subscription

    @property
    def subscription_metadata(self) -> Metadata:
        details = self.parent.subscription_details if self.parent else None
        legacy = self.subscription_details
        return (details.metadata if details else None) or (legacy.metadata if legacy else {}) or {}

    @property
    def payment_intent_id(self) -> str | None:
        """The PaymentIntent that paid the invoice, when the event says (see module doc)."""
        if self.payments is not None:
            for payment in self.payments.data:
                if payment.status == "paid" and payment.payment.payment_intent:
                    return payment.payment.payment_intent
        return self.payment_intent


class Subscription(StripeShape):
    id: StripeId
    customer: StripeId | None = None
    metadata: Metadata | None = None
