"""A donor's own data: managing a monthly gift, the data download, and retention.

Every receipt of a monthly gift carries a "manage my gift" link: an HMAC-signed token for this
one purpose, stored nowhere (like the signature manage link). Its page offers a button to
Stripe's billing portal, where the donor stops the gift or changes the card; Stripe then tells
Chorus (`customer.subscription.deleted`). Mail scanners follow links, so only the button (a
POST) opens a portal session.

A supporter's data download (app/rights) includes the gifts made with their e-mail address, and
`chorus anonymise` removes donors' names, addresses and Stripe customers once a gift has ended
more than the retention period ago, keeping the amounts so the totals stay right.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import stripe
from sqlalchemy import ColumnElement, Engine, func, or_, update
from sqlmodel import Session, col, select

from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.db import session_scope, utcnow
from app.core.errors import ProblemError
from app.core.tokens import make_token, read_link
from app.donations.models import (
    Donation,
    DonationData,
    DonationPayment,
    DonationPaymentData,
    DonationStatus,
)
from app.donations.service import stripe_client
from app.email import outbox

log = logging.getLogger(__name__)

MANAGE_PURPOSE = "manage-donation"
# Each monthly receipt brings a fresh link; one must outlive a long pause between payments.
MANAGE_TTL_SECONDS = 3 * 365 * 24 * 3600
# Stripe's portal speaks English and Korean among Chorus's languages; "auto" follows the
# donor's browser for the rest.
PORTAL_LOCALES = ("en", "ko")


def manage_url(settings: Settings, *, donation_id: int, locale: str) -> str:
    """The "manage my gift" link of a monthly gift's receipts."""
    token = make_token(
        settings, purpose=MANAGE_PURPOSE, subject=donation_id, ttl_seconds=MANAGE_TTL_SECONDS
    )
    return settings.public_url(f"/donations/manage/{token}?lang={locale}")


@dataclass(frozen=True)
class ManagedGift:
    donation: Donation
    campaign: Campaign


def load(session: Session, *, token: str, settings: Settings) -> ManagedGift:
    """The gift behind a manage link: 400 invalid, 410 expired, 404 gone, 409 anonymised."""
    claims = read_link(
        settings,
        token,
        purpose=MANAGE_PURPOSE,
        renew="Each receipt of your monthly gift carries a new link; Stripe's receipts also "
        "let you manage it.",
    )
    donation = session.get(Donation, claims.subject)
    campaign = session.get(Campaign, donation.campaign_id) if donation is not None else None
    if donation is None or campaign is None:
        raise ProblemError(404, "donation-not-found", "Chorus holds no gift for this link")
    if donation.anonymised_at is not None:
        raise ProblemError(
            409,
            "donation-anonymised",
            "The personal data of this gift has already been removed",
            "Only its amount and dates are kept, for the campaign's accounts.",
        )
    return ManagedGift(donation=donation, campaign=campaign)


def billing_portal_url(engine: Engine, *, settings: Settings, token: str, locale: str) -> str:
    """Open a Stripe billing portal session for the gift's customer; return its address.

    The gift is read in a transaction of its own, closed before Stripe is called (no lock is
    held across the network). 409 when Stripe holds no customer for the gift (a one-off gift
    paid without one), 502 when Stripe does not answer, 503 when donations are off.
    """
    client = stripe_client(settings)
    with session_scope(engine) as session:
        gift = load(session, token=token, settings=settings)
        customer = gift.donation.stripe_customer_id
    if not customer:
        raise ProblemError(
            409,
            "no-billing-account",
            "There is nothing to manage for this gift",
            "Stripe holds no billing account for it: a one-off gift has no later payments.",
        )
    params: dict[str, str] = {
        "customer": customer,
        "return_url": settings.public_url(f"/donations/manage/{token}?lang={locale}"),
        "locale": locale if locale in PORTAL_LOCALES else "auto",
    }
    try:
        portal = client.v1.billing_portal.sessions.create(params=params)  # type: ignore[arg-type]
    except stripe.StripeError as exc:
        log.error("Stripe refused a billing portal session: %s", exc)
        raise ProblemError(
            502,
            "payment-provider-error",
            "The payment provider is unavailable",
            "Please try again in a few minutes.",
        ) from None
    return portal.url


# --- the data download ------------------------------------------------------------------------


def donations_of(
    session: Session, *, email: str | None, signature_id: int | None = None
) -> list[DonationData]:
    """The gifts made with this e-mail address (any campaign) or linked to this signature."""
    matches = []
    if email:
        matches.append(func.lower(col(Donation.email)) == email.strip().lower())
    if signature_id is not None:
        matches.append(col(Donation.signature_id) == signature_id)
    if not matches:
        return []
    rows = session.exec(
        select(Donation, Campaign)
        .join(Campaign, col(Campaign.id) == col(Donation.campaign_id))
        .where(or_(*matches))
        .order_by(col(Donation.created_at), col(Donation.id))
        .limit(1000)
    ).all()
    payments: dict[int, list[DonationPaymentData]] = {}
    ids = [donation.id for donation, _ in rows if donation.id is not None]
    for payment in session.exec(
        select(DonationPayment)
        .where(col(DonationPayment.donation_id).in_(ids), col(DonationPayment.paid_at).is_not(None))
        .order_by(col(DonationPayment.paid_at), col(DonationPayment.id))
    ).all():
        payments.setdefault(payment.donation_id or 0, []).append(
            DonationPaymentData(
                amount=payment.amount,
                amount_refunded=payment.amount_refunded,
                currency=payment.currency,
                paid_at=payment.paid_at,
            )
        )
    return [
        DonationData(
            reference=donation.ref,
            campaign=campaign.slug,
            amount=donation.amount,
            currency=donation.currency,
            frequency=donation.frequency,
            status=donation.status,
            name=donation.name,
            email=donation.email,
            created_at=donation.created_at,
            payments=payments.get(donation.id or 0, []),
        )
        for donation, campaign in rows
    ]


# --- retention --------------------------------------------------------------------------------


def _ended_before(cutoff: datetime) -> list[ColumnElement[bool]]:
    # A running monthly gift has not ended, however old; anything else last changed at
    # updated_at (paid, refunded, cancelled, or a checkout never completed).
    return [
        col(Donation.anonymised_at).is_(None),
        col(Donation.status) != DonationStatus.active,
        col(Donation.updated_at) < cutoff,
    ]


def anonymise_ended(
    engine: Engine, *, cutoff: datetime, dry_run: bool = False, batch_size: int = 1000
) -> int:
    """Remove the donor's name, e-mail address, Stripe customer and signature link from gifts
    that ended before `cutoff`; their receipts in the outbox lose their recipient (pending ones
    are cancelled). Amounts, currency, dates, status and payments stay, so the totals stay right.

    In batches of `batch_size`, each its own transaction; idempotent; `dry_run` only counts.
    Returns how many gifts were (or would be) anonymised.
    """
    if dry_run:
        with session_scope(engine) as session:
            return int(
                session.execute(
                    select(func.count()).select_from(Donation).where(*_ended_before(cutoff))
                ).scalar_one()
            )
    total = 0
    while True:
        with session_scope(engine) as session:
            batch = (
                select(col(Donation.id))
                .where(*_ended_before(cutoff))
                .order_by(col(Donation.id))
                .limit(batch_size)
            )
            ids = (
                session.execute(
                    update(Donation)
                    .where(
                        col(Donation.id).in_(batch.scalar_subquery()),
                        col(Donation.anonymised_at).is_(None),  # a concurrent run got there
                    )
                    .values(
                        name=None,
                        email=None,
                        stripe_customer_id=None,
                        signature_id=None,
                        anonymised_at=utcnow(),
                    )
                    .returning(col(Donation.id))
                    .execution_options(synchronize_session=False)
                )
                .scalars()
                .all()
            )
            keys = session.exec(
                select(DonationPayment.stripe_key).where(col(DonationPayment.donation_id).in_(ids))
            ).all()
            outbox.forget_recipients(
                session, kind="donation_receipt", payload_field="payment", values=list(keys)
            )
        if not ids:
            return total
        total += len(ids)
