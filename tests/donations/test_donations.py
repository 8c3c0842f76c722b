"""Donations: checkout through the real stripe client, signed webhooks, receipts, totals."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import Session, select

from app.donations.models import Donation, DonationPayment, DonationStatus, StripeEvent
from app.email.models import OutboxMessage
from tests import stripe_events as events
from tests.conftest import STRIPE_WEBHOOK_SECRET, LiveServer, Mailbox, body_text
from tests.fake_stripe import FakeStripe

CAMPAIGN = "protect-captured-north-korean-soldiers"


def donate(client: TestClient, **data: Any) -> Any:
    body = {"amount": 2500, "currency": "EUR", "frequency": "once", **data}
    return client.post(f"/api/v1/campaigns/{CAMPAIGN}/donations", json=body)


def post_event(
    client: TestClient,
    event: dict[str, Any],
    *,
    secret: str = STRIPE_WEBHOOK_SECRET,
    signature: str | None = None,
) -> Any:
    payload = json.dumps(event).encode()
    header = signature if signature is not None else events.sign(payload, secret)
    return client.post(
        "/api/v1/stripe/webhook",
        content=payload,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


def totals(client: TestClient) -> dict[str, dict[str, int]]:
    body = client.get(f"/api/v1/campaigns/{CAMPAIGN}/donations/totals").json()
    return {t["currency"]: t for t in body["totals"]}


def start(client: TestClient, fake: FakeStripe, **data: Any) -> tuple[str, dict[str, Any]]:
    response = donate(client, **data)
    assert response.status_code == 201, response.text
    ref = response.json()["donation"]
    [session] = [s for s in fake.sessions.values() if s["metadata"]["donation"] == ref]
    return ref, session


def test_checkout_for_krw_is_not_multiplied_by_100(
    client: TestClient, demo: Any, fake_stripe: FakeStripe, session: Session
) -> None:
    response = donate(
        client,
        amount=10000,
        currency="KRW",
        email="kim@example.org",
        name="Kim Min-jun",
        locale="ko",
    )
    assert response.status_code == 201
    body = response.json()
    [checkout] = fake_stripe.sessions.values()
    assert body["checkout_url"] == checkout["url"]

    [request] = [r for r in fake_stripe.requests if r.path == "/v1/checkout/sessions"]
    item = request.params["line_items"][0]
    assert item["price_data"]["currency"] == "krw"
    assert item["price_data"]["unit_amount"] == "10000"  # ₩10,000, not 1,000,000
    assert request.params["mode"] == "payment"
    assert request.params["metadata"] == {"donation": body["donation"], "campaign": CAMPAIGN}
    assert request.params["payment_intent_data"]["metadata"]["donation"] == body["donation"]
    assert request.params["customer_email"] == "kim@example.org"
    assert request.params["locale"] == "ko"
    assert request.params["success_url"].startswith(
        f"http://testserver/campaigns/{CAMPAIGN}/donate/thanks?donation="
    )
    assert request.headers["Idempotency-Key"] == f"checkout-{body['donation']}"

    stored = session.exec(select(Donation)).one()
    assert (stored.amount, stored.currency, stored.status, stored.stripe_checkout_session_id) == (
        10000,
        "KRW",
        DonationStatus.pending,
        checkout["id"],
    )


def test_eur_amounts_are_in_cents_and_monthly_is_a_subscription(
    client: TestClient, demo: Any, fake_stripe: FakeStripe
) -> None:
    start(client, fake_stripe, amount=2500, currency="EUR", frequency="monthly")
    [request] = [r for r in fake_stripe.requests if r.path == "/v1/checkout/sessions"]
    item = request.params["line_items"][0]["price_data"]
    assert (item["unit_amount"], item["currency"]) == ("2500", "eur")
    assert item["recurring"] == {"interval": "month"}
    assert request.params["mode"] == "subscription"
    assert "donation" in request.params["subscription_data"]["metadata"]


@pytest.mark.parametrize(
    ("data", "field", "error_type"),
    [
        ({"currency": "GBP"}, "currency", "currency_not_accepted"),
        ({"currency": "KRW", "amount": 999}, "amount", "amount_too_small"),
        ({"currency": "EUR", "amount": 99}, "amount", "amount_too_small"),
        ({"currency": "EUR", "amount": 1_000_001}, "amount", "amount_too_large"),
        ({"amount": "25"}, "amount", "int_type"),
        ({"amount": 25.5}, "amount", "int_type"),
        ({"frequency": "weekly"}, "frequency", "enum"),
    ],
)
def test_bad_amounts_get_a_clear_error_and_no_checkout(
    client: TestClient,
    demo: Any,
    fake_stripe: FakeStripe,
    data: dict[str, Any],
    field: str,
    error_type: str,
) -> None:
    response = donate(client, **data)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [(e["field"], e["type"]) for e in response.json()["errors"]] == [(field, error_type)]
    assert fake_stripe.sessions == {}


def test_stripe_outage_is_a_502_problem(
    client: TestClient, demo: Any, fake_stripe: FakeStripe, session: Session
) -> None:
    fake_stripe.fail_next(500, count=5)
    response = donate(client)
    assert response.status_code == 502
    assert response.json()["title"] == "The payment provider is unavailable"
    assert session.exec(select(Donation)).one().status == DonationStatus.failed


def test_unknown_campaign(client: TestClient, engine: Any, fake_stripe: FakeStripe) -> None:
    response = client.post(
        "/api/v1/campaigns/nope/donations", json={"amount": 2500, "currency": "EUR"}
    )
    assert response.status_code == 404


def test_completed_checkout_records_one_donation_and_one_receipt_even_if_redelivered(
    client: TestClient,
    demo: Any,
    fake_stripe: FakeStripe,
    session: Session,
    smtp: Mailbox,
    outbox: Callable[[], int],
) -> None:
    ref, checkout = start(client, fake_stripe, amount=30000, currency="KRW", locale="ko")
    completed = events.event(
        "checkout.session.completed",
        events.completed_session(checkout, email="donor@example.org", name="Kim Min-jun"),
    )

    for _ in range(10):
        response = post_event(client, completed)
        assert response.status_code == 200
    assert [r for r in session.exec(select(StripeEvent)).all()] and len(
        session.exec(select(StripeEvent)).all()
    ) == 1

    donation = session.exec(select(Donation)).one()
    assert donation.status == DonationStatus.paid
    assert donation.email == "donor@example.org"
    assert len(session.exec(select(DonationPayment)).all()) == 1
    assert totals(client)["KRW"] == {
        "currency": "KRW",
        "gross": 30000,
        "refunded": 0,
        "net": 30000,
        "payments": 1,
    }

    outbox()
    [receipt] = smtp.wait_for(1)
    time.sleep(0.1)
    assert len(smtp.messages) == 1
    assert receipt["To"].addresses[0].addr_spec == "donor@example.org"
    assert "₩30,000" in receipt["Subject"]
    assert ref in body_text(receipt)
    assert "기부" in body_text(receipt)  # in the donor's language


def test_concurrent_duplicate_deliveries_make_one_donation(
    live_server: LiveServer, demo: Any, fake_stripe: FakeStripe, session: Session
) -> None:
    response = httpx.post(
        f"{live_server.url}/api/v1/campaigns/{CAMPAIGN}/donations",
        json={"amount": 5000, "currency": "USD"},
    )
    assert response.status_code == 201
    [checkout] = fake_stripe.sessions.values()
    payload = json.dumps(
        events.event("checkout.session.completed", events.completed_session(checkout))
    ).encode()
    header = events.sign(payload, STRIPE_WEBHOOK_SECRET)
    barrier = threading.Barrier(12)

    def deliver(_: int) -> int:
        with httpx.Client(timeout=30) as http:
            barrier.wait()
            return http.post(
                f"{live_server.url}/api/v1/stripe/webhook",
                content=payload,
                headers={"Stripe-Signature": header},
            ).status_code

    with ThreadPoolExecutor(12) as pool:
        assert set(pool.map(deliver, range(12))) == {200}
    assert len(session.exec(select(DonationPayment)).all()) == 1
    receipts = [
        m for m in session.exec(select(OutboxMessage)).all() if m.kind == "donation_receipt"
    ]
    assert len(receipts) == 1


def test_forged_or_unsigned_webhooks_are_refused_and_change_nothing(
    client: TestClient, demo: Any, fake_stripe: FakeStripe, session: Session
) -> None:
    _, checkout = start(client, fake_stripe)
    completed = events.event("checkout.session.completed", events.completed_session(checkout))
    payload = json.dumps(completed).encode()

    forged = post_event(client, completed, secret="whsec_attacker")
    unsigned = client.post("/api/v1/stripe/webhook", content=payload)
    tampered_payload = payload.replace(b'"paid"', b'"PAID"')
    tampered = client.post(
        "/api/v1/stripe/webhook",
        content=tampered_payload,
        headers={"Stripe-Signature": events.sign(payload, STRIPE_WEBHOOK_SECRET)},
    )
    stale = post_event(
        client,
        completed,
        signature=events.sign(payload, STRIPE_WEBHOOK_SECRET, timestamp=int(time.time()) - 3600),
    )
    garbage = post_event(client, completed, signature="t=1,v1=deadbeef")

    for response in (forged, unsigned, tampered, stale, garbage):
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
    assert session.exec(select(StripeEvent)).all() == []
    assert session.exec(select(Donation)).one().status == DonationStatus.pending
    assert totals(client) == {}


def test_an_empty_webhook_secret_refuses_everything(
    settings: Any, engine: Any, demo: Any, fake_stripe: FakeStripe
) -> None:
    from app.main import create_app

    unconfigured = create_app(settings.model_copy(update={"STRIPE_WEBHOOK_SECRET": SecretStr("")}))
    with TestClient(unconfigured) as client:
        event = events.event(
            "checkout.session.completed", {"id": "cs_x", "object": "checkout.session"}
        )
        for secret in ("", STRIPE_WEBHOOK_SECRET):
            payload = json.dumps(event).encode()
            response = client.post(
                "/api/v1/stripe/webhook",
                content=payload,
                headers={"Stripe-Signature": events.sign(payload, secret)},
            )
            assert response.status_code == 400


def test_a_refund_lowers_the_total(
    client: TestClient, demo: Any, fake_stripe: FakeStripe, session: Session
) -> None:
    _, checkout = start(client, fake_stripe, amount=5000, currency="EUR")
    completed = events.completed_session(checkout, payment_intent="pi_refund_me")
    assert (
        post_event(client, events.event("checkout.session.completed", completed)).status_code == 200
    )
    assert totals(client)["EUR"]["net"] == 5000

    partial = events.charge(
        payment_intent="pi_refund_me", amount=5000, currency="eur", amount_refunded=2000
    )
    post_event(client, events.event("charge.refunded", partial))
    assert totals(client)["EUR"] == {
        "currency": "EUR",
        "gross": 5000,
        "refunded": 2000,
        "net": 3000,
        "payments": 1,
    }
    assert session.exec(select(Donation)).one().status == DonationStatus.paid

    full = events.charge(
        payment_intent="pi_refund_me", amount=5000, currency="eur", amount_refunded=5000
    )
    post_event(client, events.event("charge.refunded", full))
    assert totals(client)["EUR"]["net"] == 0
    assert session.exec(select(Donation)).one().status == DonationStatus.refunded


def test_events_out_of_order_do_not_corrupt_the_donation(
    client: TestClient, demo: Any, fake_stripe: FakeStripe, session: Session
) -> None:
    ref, checkout = start(client, fake_stripe, amount=5000, currency="EUR")
    metadata = {"donation": ref, "campaign": CAMPAIGN}
    now = int(time.time())
    refund = events.event(
        "charge.refunded",
        events.charge(payment_intent="pi_ooo", amount=5000, currency="eur", amount_refunded=5000),
        created=now,
    )
    failed_attempt = events.event(
        "payment_intent.payment_failed",
        events.payment_intent(id="pi_ooo", amount=5000, currency="eur", metadata=metadata),
        created=now - 120,
    )
    completed = events.event(
        "checkout.session.completed",
        events.completed_session(checkout, payment_intent="pi_ooo"),
        created=now - 60,
    )

    # The refund first, then the earlier failed attempt, then the completion.
    for event in (refund, failed_attempt, completed):
        assert post_event(client, event).status_code == 200

    donation = session.exec(select(Donation)).one()
    assert donation.status == DonationStatus.refunded
    assert totals(client)["EUR"] == {
        "currency": "EUR",
        "gross": 5000,
        "refunded": 5000,
        "net": 0,
        "payments": 1,
    }
    # A late "failed" after payment does not undo it either.
    late_fail = events.event(
        "payment_intent.payment_failed",
        events.payment_intent(id="pi_ooo", amount=5000, currency="eur", metadata=metadata),
    )
    post_event(client, late_fail)
    assert session.exec(select(Donation)).one().status == DonationStatus.refunded


def test_async_payment_methods(
    client: TestClient, demo: Any, fake_stripe: FakeStripe, session: Session
) -> None:
    _, ok_checkout = start(client, fake_stripe, amount=2000, currency="EUR")
    _, bad_checkout = start(client, fake_stripe, amount=3000, currency="EUR")
    for checkout, outcome in ((ok_checkout, "succeeded"), (bad_checkout, "failed")):
        unpaid = events.completed_session(checkout, payment_status="unpaid")
        post_event(client, events.event("checkout.session.completed", unpaid))
        status = (
            session.exec(
                select(Donation).where(Donation.stripe_checkout_session_id == checkout["id"])
            )
            .one()
            .status
        )
        assert status == DonationStatus.processing
        post_event(
            client,
            events.event(
                f"checkout.session.async_payment_{outcome}",
                {**unpaid, "payment_status": "paid" if outcome == "succeeded" else "unpaid"},
            ),
        )
    by_session = {
        d.stripe_checkout_session_id: d.status for d in session.exec(select(Donation)).all()
    }
    assert by_session == {
        ok_checkout["id"]: DonationStatus.paid,
        bad_checkout["id"]: DonationStatus.failed,
    }
    assert totals(client)["EUR"]["gross"] == 2000


def test_a_monthly_gift_records_each_invoice(
    client: TestClient,
    demo: Any,
    fake_stripe: FakeStripe,
    session: Session,
    smtp: Mailbox,
    outbox: Callable[[], int],
) -> None:
    ref, checkout = start(
        client,
        fake_stripe,
        amount=20000,
        currency="UAH",
        frequency="monthly",
        email="olena@example.org",
        locale="uk",
    )
    metadata = {"donation": ref, "campaign": CAMPAIGN}
    completed = events.completed_session(checkout, subscription="sub_monthly")
    post_event(client, events.event("checkout.session.completed", completed))
    assert session.exec(select(Donation)).one().status == DonationStatus.active
    assert totals(client) == {}  # money arrives with the invoices

    for month, reason in enumerate(
        ("subscription_create", "subscription_cycle", "subscription_cycle")
    ):
        invoice = events.invoice(
            subscription="sub_monthly",
            subscription_metadata=metadata,
            amount_paid=20000,
            currency="uah",
            billing_reason=reason,
        )
        paid = events.event("invoice.paid", invoice)
        post_event(client, paid)
        post_event(client, paid)  # a redelivery changes nothing
        assert totals(client)["UAH"]["payments"] == month + 1
    assert totals(client)["UAH"]["gross"] == 60000

    post_event(
        client,
        events.event(
            "customer.subscription.deleted",
            events.subscription(id="sub_monthly", metadata=metadata),
        ),
    )
    assert session.exec(select(Donation)).one().status == DonationStatus.cancelled
    assert totals(client)["UAH"]["gross"] == 60000

    outbox()
    receipts = smtp.wait_for(3)
    # In Ukrainian, as Ukrainian writes amounts (Babel): a decimal comma, the sign after.
    assert all("200,00\u00a0₴" in str(m["Subject"]) for m in receipts)
    assert all(m["To"].addresses[0].addr_spec == "olena@example.org" for m in receipts)


def test_donor_who_signed_is_linked_to_their_signature(
    client: TestClient, demo: Any, fake_stripe: FakeStripe, session: Session
) -> None:
    from app.signatures.models import Signature

    client.post(
        "/api/v1/petitions/no-forced-return/signatures",
        json={"name": "Kim", "email": "Kim.Donor@Example.org", "country": "KR"},
    )
    _, checkout = start(client, fake_stripe)
    post_event(
        client,
        events.event(
            "checkout.session.completed",
            events.completed_session(checkout, email="kim.donor@example.org"),
        ),
    )
    signature = session.exec(select(Signature)).one()
    assert session.exec(select(Donation)).one().signature_id == signature.id


def test_donate_page_and_form(client: TestClient, demo: Any, fake_stripe: FakeStripe) -> None:
    page = client.get(f"/campaigns/{CAMPAIGN}/donate?lang=ko")
    assert page.status_code == 200
    assert "₩10,000" in page.text and 'name="custom_amount"' in page.text
    eur = client.get(f"/campaigns/{CAMPAIGN}/donate?lang=en&currency=EUR")
    assert "€25.00" in eur.text

    too_small = client.post(
        f"/campaigns/{CAMPAIGN}/donate",
        data={"currency": "KRW", "custom_amount": "500", "frequency": "once", "locale": "ko"},
    )
    assert too_small.status_code == 422
    assert 'id="e-amount"' in too_small.text and "₩1,000" in too_small.text
    not_a_number = client.post(
        f"/campaigns/{CAMPAIGN}/donate",
        data={"currency": "EUR", "custom_amount": "ten", "locale": "en"},
    )
    assert "Enter the amount as a number, like 25.50" in not_a_number.text
    assert fake_stripe.sessions == {}

    ok = client.post(
        f"/campaigns/{CAMPAIGN}/donate",
        data={"currency": "EUR", "custom_amount": "12.50", "frequency": "monthly", "locale": "en"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    [checkout] = fake_stripe.sessions.values()
    assert ok.headers["location"] == checkout["url"]
    assert checkout["amount_total"] == 1250
    assert checkout["mode"] == "subscription"

    thanks = client.get(f"/campaigns/{CAMPAIGN}/donate/thanks?lang=en")
    assert "Thank you for your gift" in thanks.text
