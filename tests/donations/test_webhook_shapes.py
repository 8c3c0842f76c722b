"""Stripe webhooks as Stripe sends them in 2026: monthly payments named by InvoicePayments and
refunded through their PaymentIntent; signed events of the wrong shape refused and kept."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.donations import service as donation_service
from app.donations.models import (
    Donation,
    DonationPayment,
    DonationStatus,
    StripeEvent,
    StripeEventStatus,
)
from app.donations.service import STRIPE_API_VERSION
from tests import stripe_events as events
from tests.conftest import STRIPE_WEBHOOK_SECRET
from tests.donations.test_donations import CAMPAIGN, post_event, start, totals
from tests.fake_stripe import FakeStripe


def test_every_stripe_request_names_the_pinned_api_version(
    client: TestClient, demo: Any, fake_stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    start(client, fake_stripe)
    [request] = fake_stripe.requests
    assert request.headers["Stripe-Version"] == STRIPE_API_VERSION == "2026-10-28.endive"
    # The version sent is Chorus's constant, not whatever the stripe package defaults to.
    monkeypatch.setattr(donation_service, "STRIPE_API_VERSION", "2099-01-01.test")
    start(client, fake_stripe)
    assert fake_stripe.requests[-1].headers["Stripe-Version"] == "2099-01-01.test"


def monthly_gift(client: TestClient, fake: FakeStripe) -> tuple[str, dict[str, str]]:
    ref, checkout = start(
        client, fake, amount=20000, currency="UAH", frequency="monthly", locale="uk"
    )
    completed = events.completed_session(checkout, subscription="sub_2026")
    assert post_event(client, events.event("checkout.session.completed", completed)).is_success
    return ref, {"donation": ref, "campaign": CAMPAIGN}


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(("invoice.paid", "invoice_payment.paid", "charge.refunded"))),
)
def test_a_monthly_payment_refunded_leaves_nothing_in_the_totals(
    client: TestClient,
    demo: Any,
    fake_stripe: FakeStripe,
    session: Session,
    order: tuple[str, ...],
) -> None:
    _, metadata = monthly_gift(client, fake_stripe)
    invoice = events.invoice(
        subscription="sub_2026", subscription_metadata=metadata, amount_paid=20000, currency="uah"
    )
    assert "payment_intent" not in invoice  # as Stripe sends it since 2025-03-31
    by_type = {
        "invoice.paid": events.event("invoice.paid", invoice),
        "invoice_payment.paid": events.event(
            "invoice_payment.paid",
            events.invoice_payment(
                invoice=invoice["id"], payment_intent="pi_month1", amount_paid=20000, currency="uah"
            ),
        ),
        # A refund names the PaymentIntent only (a Charge has no `invoice` since basil).
        "charge.refunded": events.event(
            "charge.refunded",
            events.charge(
                payment_intent="pi_month1", amount=20000, currency="uah", amount_refunded=20000
            ),
        ),
    }
    for type_ in order:
        response = post_event(client, by_type[type_])
        assert response.status_code == 200, response.text
    assert totals(client)["UAH"] == {
        "currency": "UAH",
        "gross": 20000,
        "refunded": 20000,
        "net": 0,
        "payments": 1,
    }
    [payment] = session.exec(select(DonationPayment)).all()
    assert (payment.stripe_invoice_id, payment.stripe_payment_intent_id) == (
        invoice["id"],
        "pi_month1",
    )
    # A monthly gift stays active after one month is refunded.
    assert session.exec(select(Donation)).one().status == DonationStatus.active


def test_an_invoice_with_its_payments_included_links_the_payment_intent(
    client: TestClient, demo: Any, fake_stripe: FakeStripe
) -> None:
    _, metadata = monthly_gift(client, fake_stripe)
    invoice = events.invoice(
        subscription="sub_2026", subscription_metadata=metadata, amount_paid=20000, currency="uah"
    )
    invoice["payments"] = {
        "object": "list",
        "data": [
            events.invoice_payment(
                invoice=invoice["id"],
                payment_intent="pi_in_list",
                amount_paid=20000,
                currency="uah",
            )
        ],
        "has_more": False,
        "url": "/v1/invoice_payments",
    }
    post_event(client, events.event("invoice.paid", invoice))
    refund = events.charge(
        payment_intent="pi_in_list", amount=20000, currency="uah", amount_refunded=5000
    )
    post_event(client, events.event("charge.refunded", refund))
    assert totals(client)["UAH"]["net"] == 15000


def malformed_events(checkout: dict[str, Any]) -> dict[str, Any]:
    """The six signed-but-malformed shapes, each a checkout.session.completed gone wrong."""

    def completed(**changes: Any) -> dict[str, Any]:
        obj = events.completed_session(checkout)
        obj.update(changes)
        return events.event("checkout.session.completed", obj)

    yesterday = completed()
    yesterday["created"] = "yesterday"
    no_object = completed()
    no_object["data"] = {}
    without_id = completed()
    del without_id["data"]["object"]["id"]
    return {
        "created-yesterday": yesterday,
        "list-body": [completed()],
        "amount-abc": completed(amount_total="abc"),
        "no-data-object": no_object,
        "object-without-id": without_id,
        "list-for-dict": completed(customer_details=[{"email": "donor@example.org"}]),
        "negative-amount": completed(amount_total=-5000),
        "fractional-amount": completed(amount_total=2500.5),
    }


def test_signed_events_of_the_wrong_shape_are_refused_and_kept(
    client: TestClient, demo: Any, fake_stripe: FakeStripe, session: Session
) -> None:
    _, checkout = start(client, fake_stripe, amount=5000, currency="EUR")
    cases = malformed_events(checkout)
    for name, bad in cases.items():
        for _ in range(2):  # a redelivery is refused again, and stored once
            response = post_event(client, bad)
            assert response.status_code == 400, (name, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["type"].endswith("/webhook-shape")
    stored = session.exec(select(StripeEvent)).all()
    assert len(stored) == len(cases)
    assert {row.status for row in stored} == {StripeEventStatus.rejected}
    reasons = " | ".join(row.reason or "" for row in stored)
    for field in ("created", "amount_total", "data.object", "id", "customer_details"):
        assert field in reasons
    [unreadable] = [row for row in stored if isinstance(row.payload, list)]
    assert unreadable.id.startswith("unreadable:")
    # Nothing was applied: no payment, no lowered total, the donation still pending.
    assert totals(client) == {}
    assert session.exec(select(DonationPayment)).all() == []
    assert session.exec(select(Donation)).one().status == DonationStatus.pending

    # The genuine event still goes through.
    good = events.event("checkout.session.completed", events.completed_session(checkout))
    assert post_event(client, good).status_code == 200
    assert totals(client)["EUR"]["net"] == 5000


def test_a_refused_event_is_applied_when_redelivered_in_a_shape_that_fits(
    client: TestClient, demo: Any, fake_stripe: FakeStripe, session: Session
) -> None:
    # As when Chorus is fixed to read a shape it refused: Stripe's retry is applied then.
    _, checkout = start(client, fake_stripe, amount=5000, currency="EUR")
    good = events.event("checkout.session.completed", events.completed_session(checkout))
    session.add(
        StripeEvent(
            id=good["id"],
            type=good["type"],
            payload=good,
            status=StripeEventStatus.rejected,
            reason="data.object.amount_total: Input should be a valid integer",
        )
    )
    session.commit()
    response = post_event(client, good)
    assert response.status_code == 200 and response.json()["duplicate"] is True
    assert session.exec(select(StripeEvent)).one().status == StripeEventStatus.applied
    assert totals(client)["EUR"]["net"] == 5000
    post_event(client, good)  # and only once
    assert totals(client)["EUR"]["payments"] == 1


def test_a_donor_name_from_stripe_that_is_unsafe_in_a_header_is_dropped_not_the_payment(
    client: TestClient, demo: Any, fake_stripe: FakeStripe, session: Session
) -> None:
    _, checkout = start(client, fake_stripe, amount=5000, currency="EUR")
    completed = events.completed_session(
        checkout, name="Kim\r\nBcc: everyone@example.org", email="kim@example.org"
    )
    assert post_event(client, events.event("checkout.session.completed", completed)).is_success
    donation = session.exec(select(Donation)).one()
    assert (donation.name, donation.email) == (None, "kim@example.org")
    assert totals(client)["EUR"]["net"] == 5000


def test_unsigned_garbage_is_still_refused_without_being_kept(
    client: TestClient, demo: Any, fake_stripe: FakeStripe, session: Session
) -> None:
    payload = json.dumps([1, 2, 3]).encode()
    response = client.post(
        "/api/v1/stripe/webhook",
        content=payload,
        headers={"Stripe-Signature": events.sign(payload, "whsec_attacker")},
    )
    assert response.status_code == 400
    not_json = b"{not json"
    response = client.post(
        "/api/v1/stripe/webhook",
        content=not_json,
        headers={"Stripe-Signature": events.sign(not_json, STRIPE_WEBHOOK_SECRET)},
    )
    assert response.status_code == 400
    assert session.exec(select(StripeEvent)).all() == []
