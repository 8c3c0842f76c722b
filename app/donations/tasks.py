"""The donation receipt, rendered by the outbox worker at send time."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.i18n import long_date, translate
from app.core.templating import render_email
from app.donations import donors
from app.donations.currencies import CURRENCIES
from app.donations.models import Donation, DonationPayment, Frequency
from app.email.service import EmailMessage, renderer


@renderer("donation_receipt")
def receipt(session: Session, payload: dict[str, Any], settings: Settings) -> EmailMessage | None:
    payment = session.exec(
        select(DonationPayment).where(DonationPayment.stripe_key == payload["payment"])
    ).first()
    if payment is None or payment.donation_id is None:
        return None
    donation = session.get(Donation, payment.donation_id)
    campaign = session.get(Campaign, donation.campaign_id) if donation else None
    if donation is None or campaign is None or not donation.email:
        return None
    locale = donation.locale

    def t(key: str, **values: Any) -> str:
        return translate(locale, key, **values)

    rules = CURRENCIES.get(payment.currency)
    amount = (
        rules.format(payment.amount, locale) if rules else f"{payment.amount} {payment.currency}"
    )
    names = campaign.translations.get(locale) or campaign.translations[campaign.default_locale]
    monthly = donation.frequency == Frequency.monthly
    # Where the donor stops the gift or changes the card (Stripe's billing portal).
    manage_url = (
        donors.manage_url(settings, donation_id=donation.id, locale=locale)
        if monthly and donation.id is not None and donation.stripe_customer_id
        else None
    )
    text, html = render_email(
        "donation_receipt",
        t=t,
        locale=locale,
        name=donation.name or "",
        amount=amount,
        currency=payment.currency,
        campaign=names["name"],
        reference=donation.ref,
        monthly=monthly,
        manage_url=manage_url,
        date=long_date(payment.paid_at or payment.created_at, locale),
    )
    return EmailMessage(
        to=donation.email,
        to_name=donation.name,
        subject=t("email.receipt.subject", amount=amount),
        text=text,
        html=html,
        headers={"Content-Language": locale},
    )
