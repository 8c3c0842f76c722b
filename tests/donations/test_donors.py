"""A donor's own data: the billing portal link in monthly receipts, the data download, and
retention (`chorus anonymise`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from app.core.config import Settings
from app.core.db import utcnow
from app.core.tokens import make_token
from app.donations import donors
from app.donations.models import Donation, DonationStatus
from app.email.models import OutboxMessage, OutboxStatus
from app.rights import service as rights_service
from app.signatures.models import Signature
from tests import stripe_events as events
from tests.conftest import Mailbox, body_text
from tests.donations.test_donations import CAMPAIGN, post_event, start, totals
from tests.fake_stripe import FakeStripe


def monthly_gift_paid(
    client: TestClient, fake: FakeStripe, *, email: str = "olena@example.org"
) -> str:
    ref, checkout = start(
        client,
        fake,
        amount=20000,
        currency="UAH",
        frequency="monthly",
        email=email,
        locale="uk",
    )
    completed = events.completed_session(checkout, subscription="sub_m", customer="cus_olena")
    post_event(client, events.event("checkout.session.completed", completed))
    invoice = events.invoice(
        subscription="sub_m",
        subscription_metadata={"donation": ref, "campaign": CAMPAIGN},
        amount_paid=20000,
        currency="uah",
        customer="cus_olena",
    )
    assert post_event(client, events.event("invoice.paid", invoice)).status_code == 200
    return ref


def manage_link(message: Any) -> str:
    for line in body_text(message).splitlines():
        if "/donations/manage/" in line:
            return line.strip()
    raise AssertionError("no manage link in the receipt")


def test_a_monthly_receipt_links_to_stripes_billing_portal(
    client: TestClient,
    demo: Any,
    fake_stripe: FakeStripe,
    smtp: Mailbox,
    outbox: Callable[[], int],
) -> None:
    monthly_gift_paid(client, fake_stripe)
    outbox()
    [receipt] = smtp.wait_for(1)
    link = manage_link(receipt)
    assert link.startswith("http://testserver/donations/manage/") and link.endswith("?lang=uk")
    path = link.removeprefix("http://testserver")

    page = client.get(path)  # what a mail scanner does: shows, calls nobody
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "200,00\u00a0₴" in page.text and 'data-testid="portal"' in page.text
    assert fake_stripe.portal_sessions == {}

    token = path.split("/donations/manage/", 1)[1].split("?", 1)[0]
    portal = client.post(f"/donations/manage/{token}/portal?lang=uk", follow_redirects=False)
    assert portal.status_code == 303
    [session] = fake_stripe.portal_sessions.values()
    assert portal.headers["location"] == session["url"]
    assert session["customer"] == "cus_olena"
    assert session["return_url"] == f"http://testserver/donations/manage/{token}?lang=uk"


def test_a_one_off_receipt_has_no_manage_link(
    client: TestClient,
    demo: Any,
    fake_stripe: FakeStripe,
    smtp: Mailbox,
    outbox: Callable[[], int],
) -> None:
    _, checkout = start(client, fake_stripe, email="once@example.org")
    post_event(
        client, events.event("checkout.session.completed", events.completed_session(checkout))
    )
    outbox()
    [receipt] = smtp.wait_for(1)
    assert "/donations/manage/" not in body_text(receipt)


def test_bad_links_and_stripe_outages_get_a_clear_page(
    client: TestClient,
    demo: Any,
    fake_stripe: FakeStripe,
    settings: Settings,
    session: Session,
) -> None:
    monthly_gift_paid(client, fake_stripe)
    donation = session.exec(select(Donation)).one()
    assert donation.id is not None
    token = make_token(settings, purpose=donors.MANAGE_PURPOSE, subject=donation.id, ttl_seconds=60)
    expired = make_token(
        settings, purpose=donors.MANAGE_PURPOSE, subject=donation.id, ttl_seconds=-1
    )
    # A signature's manage token is for another purpose.
    other = rights_service.manage_token(settings, signature_id=donation.id)
    missing = make_token(
        settings, purpose=donors.MANAGE_PURPOSE, subject=donation.id + 99, ttl_seconds=60
    )
    for bad, status, words in (
        ("nonsense", 400, "not valid"),
        (other, 400, "not valid"),
        (expired, 410, "expired"),
        (missing, 404, "no gift"),
    ):
        for response in (
            client.get(f"/donations/manage/{bad}?lang=en"),
            client.post(f"/donations/manage/{bad}/portal?lang=en", follow_redirects=False),
        ):
            assert response.status_code == status, (bad, response.text)
            assert words in response.text
    fake_stripe.fail_next(500, count=3)
    down = client.post(f"/donations/manage/{token}/portal?lang=en", follow_redirects=False)
    assert down.status_code == 502 and "not answering" in down.text
    assert fake_stripe.portal_sessions == {}


def test_the_supporters_data_download_includes_their_gifts(
    client: TestClient,
    demo: Any,
    fake_stripe: FakeStripe,
    settings: Settings,
    session: Session,
) -> None:
    signed = client.post(
        "/api/v1/petitions/no-forced-return/signatures",
        json={"name": "Olena", "email": "Olena@Example.org", "country": "UA"},
    )
    assert signed.status_code == 202
    ref = monthly_gift_paid(client, fake_stripe, email="olena@example.org")
    start(client, fake_stripe, email="someone.else@example.org")  # not theirs
    signature = session.exec(select(Signature)).one()
    assert signature.id is not None
    token = rights_service.manage_token(settings, signature_id=signature.id)

    exported = client.post("/api/v1/signatures/manage/export", json={"token": token})
    assert exported.status_code == 200
    [gift] = exported.json()["donations"]
    assert gift["reference"] == ref and gift["campaign"] == CAMPAIGN
    assert (gift["amount"], gift["currency"], gift["frequency"], gift["status"]) == (
        20000,
        "UAH",
        "monthly",
        "active",
    )
    assert gift["email"] == "olena@example.org"
    assert [p["amount"] for p in gift["payments"]] == [20000]
    page = client.post(f"/signatures/manage/{token}/export?lang=en")
    assert ref in page.text


def test_anonymise_removes_donors_of_ended_gifts_and_keeps_the_totals(
    client: TestClient,
    demo: Any,
    fake_stripe: FakeStripe,
    session: Session,
    engine: Engine,
    settings: Settings,
    outbox: Callable[[], int],
    smtp: Mailbox,
) -> None:
    _, checkout = start(client, fake_stripe, amount=5000, email="ended@example.org", name="Kim")
    post_event(
        client, events.event("checkout.session.completed", events.completed_session(checkout))
    )
    monthly_gift_paid(client, fake_stripe, email="running@example.org")
    before = totals(client)
    later = utcnow() + timedelta(days=200)

    dry = rights_service.anonymise_expired(engine, days=183, dry_run=True, now=later)
    assert dry.donations == 1
    assert session.exec(select(Donation).where(Donation.email == "ended@example.org")).one()

    report = rights_service.anonymise_expired(engine, days=183, now=later)
    assert report.donations == 1
    ended = session.exec(select(Donation).where(Donation.frequency == "once")).one()
    assert (ended.name, ended.email, ended.stripe_customer_id) == (None, None, None)
    assert ended.anonymised_at is not None and ended.status == DonationStatus.paid
    running = session.exec(select(Donation).where(Donation.frequency == "monthly")).one()
    assert running.email == "running@example.org" and running.anonymised_at is None
    assert totals(client) == before
    # Its receipt, still queued, no longer names the donor and is not sent.
    receipts = {
        m.dedup_key: m
        for m in session.exec(select(OutboxMessage)).all()
        if m.kind == "donation_receipt"
    }
    cleared = [m for m in receipts.values() if m.recipient is None]
    assert len(cleared) == 1 and cleared[0].status == OutboxStatus.cancelled
    outbox()
    [sent] = smtp.wait_for(1)
    assert sent["To"].addresses[0].addr_spec == "running@example.org"

    assert rights_service.anonymise_expired(engine, days=183, now=later).donations == 0
    # Once the monthly gift is stopped and has been over long enough, it goes too.
    post_event(
        client,
        events.event(
            "customer.subscription.deleted",
            events.subscription(id="sub_m", metadata={"donation": running.ref}),
        ),
    )
    assert rights_service.anonymise_expired(engine, days=183, now=later).donations == 1
    assert running.id is not None
    token = make_token(settings, purpose=donors.MANAGE_PURPOSE, subject=running.id, ttl_seconds=60)
    gone = client.get(f"/donations/manage/{token}?lang=en")
    assert gone.status_code == 409 and "already been removed" in gone.text
