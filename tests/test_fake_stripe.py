"""Self-tests of the Stripe fake and the webhook event builders, driven by the real client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from tests.fake_stripe import FakeStripe, decode_form
from tests.stripe_events import (
    API_VERSION,
    charge,
    completed_session,
    event,
    invoice,
    invoice_payment,
    payment_intent,
    sign,
    subscription,
)

API_KEY = "sk_test_chorus"
WEBHOOK_SECRET = "whsec_test_chorus"


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    server = FakeStripe(API_KEY).start()
    try:
        yield server
    finally:
        server.stop()


def make_client(fake: FakeStripe, key: str = API_KEY) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": fake.url}, max_network_retries=0)


def donation_params(**overrides: Any) -> Any:
    """Checkout params as Chorus would send them; ``None`` drops a key (the client skips it).

    Typed ``Any`` rather than ``stripe.params.checkout.SessionCreateParams`` so tests can also
    send what the client's TypedDict forbids, to check the fake's validation.
    """
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": "krw",
                    "unit_amount": 10000,
                    "product_data": {"name": "Donation"},
                },
                "quantity": 1,
            }
        ],
        "success_url": "https://chorus.test/donate/thanks?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://chorus.test/donate",
        "metadata": {"donation": "d-123", "campaign": "clean-air"},
        "payment_intent_data": {"metadata": {"donation": "d-123"}},
        "payment_method_types": ["card"],
        "locale": "ko",
    }
    params.update(overrides)
    return params


# --- the fake API ----------------------------------------------------------------------------


def test_create_checkout_session_with_the_real_client(fake: FakeStripe) -> None:
    client = make_client(fake)

    session = client.v1.checkout.sessions.create(
        params=donation_params(), options={"idempotency_key": "k1"}
    )

    assert session.id.startswith("cs_test_")
    assert session.url == f"https://checkout.stripe.com/c/pay/{session.id}"
    assert session.amount_total == 10000
    assert session.currency == "krw"
    assert session.status == "open"
    assert session.payment_status == "unpaid"
    assert session.to_dict()["metadata"] == {"donation": "d-123", "campaign": "clean-air"}
    assert session.payment_intent is None

    request = fake.requests[-1]
    assert (request.method, request.path) == ("POST", "/v1/checkout/sessions")
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Idempotency-Key"] == "k1"
    assert request.params["line_items"][0]["price_data"]["unit_amount"] == "10000"
    assert request.params["line_items"][0]["quantity"] == "1"
    assert request.params["payment_method_types"] == ["card"]
    assert request.params["metadata"] == {"donation": "d-123", "campaign": "clean-air"}

    stored = fake.sessions[session.id]
    assert stored["_request"]["payment_intent_data"] == {"metadata": {"donation": "d-123"}}
    assert session.to_dict()["_request"]["locale"] == "ko"

    again = client.v1.checkout.sessions.create(
        params=donation_params(), options={"idempotency_key": "k1"}
    )
    assert again.id == session.id
    assert len(fake.sessions) == 1
    assert len(fake.requests) == 2

    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(
            params=donation_params(metadata={"donation": "other"}),
            options={"idempotency_key": "k1"},
        )
    assert len(fake.sessions) == 1

    # Without an explicit key the client generates one per call: a new session each time.
    other = client.v1.checkout.sessions.create(params=donation_params())
    assert other.id != session.id
    assert len(fake.sessions) == 2


def test_retrieve_checkout_session(fake: FakeStripe) -> None:
    client = make_client(fake)
    created = client.v1.checkout.sessions.create(params=donation_params())

    fetched = client.v1.checkout.sessions.retrieve(created.id)
    assert fetched.id == created.id
    assert fetched.amount_total == 10000
    assert fake.requests[-1].method == "GET"
    assert fake.requests[-1].path == f"/v1/checkout/sessions/{created.id}"

    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert missing.value.http_status == 404
    assert missing.value.code == "resource_missing"


def test_subscription_session_and_validation(fake: FakeStripe) -> None:
    client = make_client(fake)
    items = [
        {
            "price_data": {
                "currency": "KRW",
                "unit_amount": 5000,
                "recurring": {"interval": "month"},
                "product_data": {"name": "Monthly donation"},
            },
            "quantity": 2,
        }
    ]
    session = client.v1.checkout.sessions.create(
        params=donation_params(
            mode="subscription",
            line_items=items,
            payment_intent_data=None,
            subscription_data={"metadata": {"donation": "d-9"}},
        )
    )
    assert (session.mode, session.currency, session.amount_total) == ("subscription", "krw", 10000)
    assert session.subscription is None
    assert fake.sessions[session.id]["_request"]["subscription_data"] == {
        "metadata": {"donation": "d-9"}
    }

    with pytest.raises(stripe.InvalidRequestError) as no_mode:
        client.v1.checkout.sessions.create(params=donation_params(mode=None))
    assert no_mode.value.param == "mode"
    with pytest.raises(stripe.InvalidRequestError) as no_items:
        client.v1.checkout.sessions.create(params=donation_params(line_items=[]))
    assert no_items.value.param == "line_items"
    with pytest.raises(stripe.InvalidRequestError) as no_success:
        client.v1.checkout.sessions.create(params=donation_params(success_url=None))
    assert no_success.value.param == "success_url"
    with pytest.raises(stripe.InvalidRequestError):  # one-time price in subscription mode
        client.v1.checkout.sessions.create(params=donation_params(mode="subscription"))
    assert len(fake.sessions) == 1


def test_errors_become_stripe_exceptions(fake: FakeStripe) -> None:
    with pytest.raises(stripe.AuthenticationError) as auth:
        make_client(fake, "sk_test_wrong_key_123").v1.checkout.sessions.create(
            params=donation_params()
        )
    assert auth.value.http_status == 401
    assert "Invalid API Key provided" in str(auth.value.user_message)

    client = make_client(fake)
    fake.fail_next(500)
    with pytest.raises(stripe.APIError) as failed:
        client.v1.checkout.sessions.create(params=donation_params())
    assert failed.value.http_status == 500
    assert failed.value.request_id is not None
    assert failed.value.request_id.startswith("req_")
    assert fake.sessions == {}

    # The failure is used up: the next request goes through.
    assert client.v1.checkout.sessions.create(params=donation_params()).id in fake.sessions

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.customers.retrieve("cus_nope")
    assert unknown.value.http_status == 404


def test_billing_portal_session_with_the_real_client(fake: FakeStripe) -> None:
    client = make_client(fake)
    portal = client.v1.billing_portal.sessions.create(
        params={"customer": "cus_123", "return_url": "https://chorus.test/back", "locale": "ko"}
    )
    assert portal.object == "billing_portal.session" and portal.customer == "cus_123"
    assert portal.url.startswith("https://billing.stripe.test/p/session/bps_")
    assert portal.return_url == "https://chorus.test/back"
    assert fake.portal_sessions[portal.id]["locale"] == "ko"

    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.billing_portal.sessions.create(params={"return_url": "https://chorus.test/"})
    assert missing.value.param == "customer"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.billing_portal.sessions.create(params={"customer": "someone"})
    assert unknown.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as bad_url:
        client.v1.billing_portal.sessions.create(
            params={"customer": "cus_123", "return_url": "back"}
        )
    assert bad_url.value.param == "return_url"
    assert len(fake.portal_sessions) == 1
    fake.reset()
    assert fake.portal_sessions == {}


def test_reset(fake: FakeStripe) -> None:
    client = make_client(fake)
    client.v1.checkout.sessions.create(params=donation_params(), options={"idempotency_key": "k"})
    fake.fail_next(503, count=3)
    fake.reset()
    assert fake.requests == [] and fake.sessions == {}
    created = client.v1.checkout.sessions.create(
        params=donation_params(metadata={"donation": "new"}), options={"idempotency_key": "k"}
    )
    assert created.to_dict()["metadata"] == {"donation": "new"}


def test_decode_form() -> None:
    body = (
        "line_items[0][price_data][unit_amount]=1000&line_items[1][quantity]=2"
        "&metadata[donation]=abc&metadata[0]=zero&payment_method_types[0]=card"
        "&expand[]=a&expand[]=b&empty=&name=Kim+Min-jun%26co"
    )
    assert decode_form(body) == {
        "line_items": [{"price_data": {"unit_amount": "1000"}}, {"quantity": "2"}],
        "metadata": {"donation": "abc", "0": "zero"},
        "payment_method_types": ["card"],
        "expand": ["a", "b"],
        "empty": "",
        "name": "Kim Min-jun&co",
    }


# --- webhook events --------------------------------------------------------------------------


def test_signed_event_is_accepted_by_construct_event(fake: FakeStripe) -> None:
    created = make_client(fake).v1.checkout.sessions.create(params=donation_params())
    obj = completed_session(fake.sessions[created.id])
    assert "_request" not in obj
    assert obj["status"] == "complete" and obj["payment_intent"].startswith("pi_")
    assert obj["customer_details"]["email"] == "donor@example.org"
    payload = json.dumps(event("checkout.session.completed", obj)).encode()

    verified = stripe.Webhook.construct_event(
        payload, sign(payload, WEBHOOK_SECRET), WEBHOOK_SECRET
    )
    assert verified.type == "checkout.session.completed"
    assert verified.data.object.id == created.id
    assert verified.data.object.metadata.donation == "d-123"
    # Our header is byte-for-byte what stripe-python would produce for the same timestamp.
    assert sign(payload, WEBHOOK_SECRET, 1700000000) == (
        stripe.WebhookSignature.generate_signature_header(
            payload.decode(), WEBHOOK_SECRET, timestamp=1700000000
        )
    )


def test_bad_signatures_are_rejected() -> None:
    payload = json.dumps(event("payment_intent.payment_failed", {"id": "pi_1"})).encode()
    cases = [
        (payload, sign(payload, "whsec_someone_else")),
        (payload.replace(b"pi_1", b"pi_2"), sign(payload, WEBHOOK_SECRET)),
        (payload, sign(payload, WEBHOOK_SECRET, int(time.time()) - 301)),
    ]
    for body, header in cases:
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(body, header, WEBHOOK_SECRET)


def test_event_builders_shapes() -> None:
    pi = payment_intent(id="pi_1", amount=10000, currency="krw", metadata={"donation": "d"})
    assert pi["last_payment_error"]["message"] == "Your card was declined."
    assert pi["last_payment_error"]["code"] == "card_declined"
    assert (
        payment_intent(id="pi_1", amount=1, currency="krw", metadata={}, status="succeeded")[
            "last_payment_error"
        ]
        is None
    )

    partial = charge(payment_intent="pi_1", amount=10000, currency="krw", amount_refunded=4000)
    assert partial["refunded"] is False and partial["id"].startswith("ch_")
    assert charge(payment_intent="pi_1", amount=10, currency="krw", amount_refunded=10)["refunded"]

    inv = invoice(
        subscription="sub_1",
        subscription_metadata={"donation": "d"},
        amount_paid=5000,
        currency="krw",
    )
    assert inv["parent"]["subscription_details"] == {
        "subscription": "sub_1",
        "metadata": {"donation": "d"},
    }
    # Gone from the Invoice since 2025-03-31 ("basil"): an InvoicePayment names the payment.
    assert not {"payment_intent", "charge", "paid", "subscription"} & set(inv)
    paid = invoice_payment(
        invoice=inv["id"], payment_intent="pi_1", amount_paid=5000, currency="krw"
    )
    assert paid["object"] == "invoice_payment" and paid["invoice"] == inv["id"]
    assert paid["payment"] == {"type": "payment_intent", "payment_intent": "pi_1"}

    sub = subscription(id="sub_1", metadata={"donation": "d"})
    assert sub["status"] == "canceled" and sub["object"] == "subscription"

    evt = event("invoice.paid", inv, id="evt_1", created=123)
    assert evt["id"] == "evt_1" and evt["created"] == 123
    assert evt["api_version"] == API_VERSION == "2026-10-28.endive"
    assert evt["data"]["object"] is inv
    assert event("x", {})["id"].startswith("evt_")
