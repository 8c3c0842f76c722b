"""A campaign's donations in the console: totals per currency as the donations service counts
them, amounts written with each currency's decimals the reader's way, and the latest gifts with
their states."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.core.db import utcnow
from app.donations.models import Donation, DonationPayment, DonationStatus, Frequency
from tests.console.helpers import csrf_of, signed_in
from tests.factories import make_campaign


def gift(
    session: Session,
    campaign_id: int,
    ref: str,
    amount: int,
    currency: str,
    status: DonationStatus,
    *,
    refunded: int = 0,
    minutes_ago: int = 0,
    **extra: Any,
) -> None:
    when = utcnow() - timedelta(minutes=minutes_ago)
    donation = Donation(
        ref=ref,
        campaign_id=campaign_id,
        amount=amount,
        currency=currency,
        frequency=extra.pop("frequency", Frequency.once),
        status=status,
        locale="en",
        created_at=when,
        **extra,
    )
    session.add(donation)
    session.flush()
    if status in (DonationStatus.paid, DonationStatus.active, DonationStatus.refunded):
        session.add(
            DonationPayment(
                stripe_key=f"pi_{ref}",
                donation_id=donation.id,
                campaign_id=campaign_id,
                amount=amount,
                amount_refunded=refunded,
                currency=currency,
                paid_at=when,
            )
        )
    session.commit()


def test_totals_and_latest_gifts_in_each_readers_own_way(
    client: TestClient, session: Session, make_account: Any
) -> None:
    campaign = make_campaign(session)
    campaign.currencies = ["EUR", "KRW"]
    other = make_campaign(session)
    assert campaign.id is not None and other.id is not None
    gift(session, campaign.id, "d-eur-1", 2550, "EUR", DonationStatus.paid, minutes_ago=30)
    gift(session, campaign.id, "d-eur-2", 10_000, "EUR", DonationStatus.refunded, refunded=10_000)
    gift(
        session,
        campaign.id,
        "d-krw-1",
        1_000_000,
        "KRW",
        DonationStatus.active,
        frequency=Frequency.monthly,
        name="Kim Min-jun",
        minutes_ago=10,
    )
    gift(session, campaign.id, "d-krw-2", 30_000, "KRW", DonationStatus.failed, minutes_ago=5)
    gift(session, other.id, "d-other", 99_900, "EUR", DonationStatus.paid)
    organiser = make_account("organiser", [campaign.slug])

    signed_in(client, organiser.email, organiser.password)
    page = client.get(f"/admin/campaigns/{campaign.slug}/donations")
    assert page.status_code == 200
    text = page.text
    eur = re.search(r'data-testid="total-EUR">(.*?)</tr>', text)
    assert eur is not None
    assert re.findall(r'<td class="num">(?:<strong>)?([^<]*)', eur[1]) == [
        "€125.50",
        "€100.00",
        "€25.50",
        "2",
    ]
    krw = re.search(r'data-testid="total-KRW">(.*?)</tr>', text)
    assert krw is not None and "₩1,000,000" in krw[1]
    assert "999" not in text and "d-other" not in text  # another campaign's money
    # Newest first, each with its state.
    assert re.findall(r'data-testid="gift-([^"]+)"', text) == [
        "d-eur-2",
        "d-krw-2",
        "d-krw-1",
        "d-eur-1",
    ]
    row = re.search(r'data-testid="gift-d-krw-1">(.*?)</tr>', text)
    assert row is not None
    assert "Monthly" in row[1] and "Running" in row[1] and "Kim Min-jun" in row[1]
    assert "Failed" in text and "Refunded" in text

    # In Ukrainian: the amounts as Ukrainian writes them.
    client.post("/admin/language", data={"csrf_token": csrf_of(text), "locale": "uk"})
    ukrainian = client.get(f"/admin/campaigns/{campaign.slug}/donations").text
    assert "125,50\xa0EUR" in ukrainian and "1\xa0000\xa0000\xa0KRW" in ukrainian
    assert "Щомісяця" in ukrainian
