"""Donations, the payments they bring (one, or one a month), and the Stripe events received."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints
from pydantic import Field as PydanticField
from pydantic_core import PydanticCustomError
from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Integer, String
from sqlmodel import Field, SQLModel

from app.core.addresses import check_email
from app.core.db import UTCDateTime, utcnow
from app.core.mail_safe import header_safe


class Frequency(StrEnum):
    once = "once"
    monthly = "monthly"


class DonationStatus(StrEnum):
    pending = "pending"  # checkout created, nothing heard back yet
    processing = "processing"  # completed with a delayed payment method (e.g. bank debit)
    failed = "failed"
    paid = "paid"  # one-off gift received
    active = "active"  # monthly gift running
    refunded = "refunded"  # one-off gift refunded in full
    cancelled = "cancelled"  # monthly gift ended


# Webhooks arrive in any order: a status only moves to a higher rank, so a late
# "payment failed" cannot undo "paid", and a late "completed" cannot undo "refunded".
STATUS_RANK = {
    DonationStatus.pending: 0,
    DonationStatus.processing: 1,
    DonationStatus.failed: 2,
    DonationStatus.paid: 3,
    DonationStatus.active: 3,
    DonationStatus.refunded: 4,
    DonationStatus.cancelled: 5,
}


class Donation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    # Public reference, sent to Stripe as metadata and client_reference_id.
    ref: str = Field(sa_type=String(40), unique=True, index=True)
    campaign_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))  # minor units
    currency: str = Field(sa_type=String(3))
    frequency: Frequency = Field(sa_type=String(16))
    status: DonationStatus = Field(default=DonationStatus.pending, sa_type=String(16))
    email: str | None = Field(default=None, sa_type=String(320))
    name: str | None = Field(default=None, sa_type=String(100))
    locale: str = Field(sa_type=String(8))
    # The supporter's signature in this campaign, when the donor also signed.
    signature_id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"),
            ForeignKey("signature.id", ondelete="SET NULL"),
        ),
    )
    stripe_checkout_session_id: str | None = Field(default=None, sa_type=String(255), index=True)
    stripe_customer_id: str | None = Field(default=None, sa_type=String(255))
    stripe_payment_intent_id: str | None = Field(default=None, sa_type=String(255))
    stripe_subscription_id: str | None = Field(default=None, sa_type=String(255), index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    # Set when retention removed the donor's name, address and Stripe customer (`chorus
    # anonymise`); the amounts, dates and status stay, so the totals stay right.
    anonymised_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DonationPayment(SQLModel, table=True):
    """Money received: the one payment of a one-off gift, or one month of a monthly gift."""

    __tablename__ = "donation_payment"

    id: int | None = Field(default=None, primary_key=True)
    # What identifies the payment in Stripe: the PaymentIntent of a one-off gift, the invoice of
    # one month of a monthly gift (a refund only seen before its payment: its PaymentIntent).
    stripe_key: str = Field(sa_type=String(255), unique=True)
    # The PaymentIntent that moved the money, when known: what refunds (`charge.refunded`)
    # refer to. A monthly payment learns it from `invoice_payment.paid` (or `invoice.payments`).
    stripe_payment_intent_id: str | None = Field(default=None, sa_type=String(255), index=True)
    donation_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("donation.id", ondelete="CASCADE"), index=True),
    )
    campaign_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("campaign.id", ondelete="CASCADE"), index=True),
    )
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    amount_refunded: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(sa_type=String(3))
    stripe_invoice_id: str | None = Field(default=None, sa_type=String(255))
    paid_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class StripeEventStatus(StrEnum):
    applied = "applied"  # a type Chorus acts on, applied
    ignored = "ignored"  # a type Chorus does not act on
    rejected = "rejected"  # signed, but not the shape Chorus expects: answered 400, kept


class StripeEvent(SQLModel, table=True):
    """Every verified webhook event, stored once by Stripe's id: a redelivery is a no-op.

    A signed event of the wrong shape is kept too (status `rejected`, with the reason), for
    someone to look at; one without a usable id is stored as `unreadable:<sha256 of the body>`.
    """

    __tablename__ = "stripe_event"

    id: str = Field(sa_type=String(255), primary_key=True)
    type: str = Field(sa_type=String(100))
    created: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    payload: Any = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: StripeEventStatus = Field(
        default=StripeEventStatus.applied,
        sa_type=String(16),
        nullable=False,
        sa_column_kwargs={"server_default": StripeEventStatus.applied.value},
    )
    reason: str | None = Field(default=None, sa_type=String(2000))
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


# --- API shapes -------------------------------------------------------------------------------

DONOR_NAME_MAX = 100


def _blank_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def check_donor_name(value: str) -> str:
    """A donor's name goes into the receipt's `To:` header: one line, at most 100 characters.

    Checked before trimming, so a name ending in CR/LF is refused, not quietly cut.
    """
    value = header_safe(value).strip()
    if len(value) > DONOR_NAME_MAX:
        raise PydanticCustomError(
            "name_too_long", "A name may be at most {max} characters long", {"max": DONOR_NAME_MAX}
        )
    return value


# Optional: empty means not given. Both reach the receipt's `To:` header, so both are checked
# here, where they enter (the form, the API and Stripe's checkout details).
DonorName = Annotated[
    Annotated[str, StringConstraints(max_length=1000), AfterValidator(check_donor_name)] | None,
    BeforeValidator(_blank_is_none),
]
DonorEmail = Annotated[
    Annotated[
        str,
        StringConstraints(max_length=320),
        AfterValidator(header_safe),
        AfterValidator(check_email),
    ]
    | None,
    BeforeValidator(_blank_is_none),
]


class DonorContact(BaseModel):
    """A donor's name and e-mail address, from any source, checked the same way."""

    name: DonorName = None
    email: DonorEmail = None


class DonationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = PydanticField(
        description="In the currency's minor unit (KRW has none).", examples=[2500], strict=True
    )
    currency: str = PydanticField(min_length=3, max_length=3, examples=["EUR"])
    frequency: Frequency = Frequency.once
    email: DonorEmail = PydanticField(default=None, examples=["donor@example.org"])
    name: DonorName = PydanticField(default=None, examples=["Kim Min-jun"])
    locale: str | None = PydanticField(default=None, max_length=35)


class CheckoutCreated(BaseModel):
    checkout_url: str
    donation: str


class CurrencyTotal(BaseModel):
    currency: str
    gross: int
    refunded: int
    net: int
    payments: int


class DonationTotals(BaseModel):
    campaign: str
    totals: list[CurrencyTotal]


class WebhookResult(BaseModel):
    received: Literal[True] = True
    duplicate: bool = False


class DonationPaymentData(BaseModel):
    amount: int
    amount_refunded: int
    currency: str
    paid_at: datetime | None


class DonationData(BaseModel):
    """A gift as the donor's data download shows it (amounts in minor units)."""

    reference: str
    campaign: str
    amount: int
    currency: str
    frequency: Frequency
    status: DonationStatus
    name: str | None
    email: str | None
    created_at: datetime
    payments: list[DonationPaymentData]
