"""The events of letters, petition deliveries and donations reach the campaign's endpoints,
emitted where they happen: a letter as its e-mail is marked sent or as it is posted, a delivery
as it is made, a payment and a refund as Stripe reports them."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from app.campaigns.models import Campaign
from app.core.config import Settings
from app.letters import supporters as letter_service
from app.letters.models import Letter
from app.petitions.models import Petition
from app.targets.models import DeliveryChannel, Target
from tests import stripe_events
from tests.conftest import STRIPE_WEBHOOK_SECRET, Account, Mailbox
from tests.fake_stripe import FakeStripe
from tests.webhooks.conftest import Receiver, confirm, register, sign
from tests.worker_thread import worker_running


def slug_of(session: Session, petition: Petition) -> str:
    campaign = session.get(Campaign, petition.campaign_id)
    assert campaign is not None
    return campaign.slug


def test_a_supporters_letter_is_announced_when_sent_and_when_posted(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    engine: Engine,
    demo: Petition,
    admin: Account,
    receiver: Receiver,
    smtp: Mailbox,
) -> None:
    postal = session.exec(select(Target).where(Target.key == "eu-hr-vp")).one()
    postal.delivery_channel = DeliveryChannel.postal
    session.add(postal)
    session.commit()
    _, secret = register(
        hook_client,
        admin,
        slug_of(session, demo),
        receiver.url,
        events=["letter.sent"],
        scope="full",
    )
    written = hook_client.post(
        f"/api/v1/petitions/{demo.slug}/letters",
        json={
            "name": "Ji-woo Park",
            "email": "jiwoo@example.org",
            "city": "Busan",
            "country": "KR",
            "targets": ["ua-president", "eu-hr-vp"],
            "message": "Please do not let them be sent back: they would be punished for "
            "having survived. My own family was separated by the war.",
            "locale": "en",
        },
    )
    assert written.status_code == 202, written.text
    letter = session.exec(select(Letter)).one()
    assert letter.id is not None
    token = letter_service.confirmation_token(hook_settings, letter_id=letter.id)
    assert hook_client.post("/api/v1/letters/confirm", json={"token": token}).status_code == 200
    assert receiver.all() == []  # queued, not sent: nothing to announce yet

    with worker_running(hook_settings, engine):
        [emailed] = receiver.wait_for(1)
    # (the confirmation e-mail was cancelled: the letter is confirmed already)
    assert [str(m["To"].addresses[0].addr_spec) for m in smtp.messages] == [
        "president@ukraine.example"
    ]
    assert emailed.json["type"] == "letter.sent"
    assert emailed.json["data"]["letter"]["channel"] == "email"
    assert emailed.json["data"]["letter"]["target"] == "ua-president"
    assert emailed.json["data"]["letter"]["kind"] == "supporter"
    assert emailed.json["data"]["supporter"] == {
        "name": "Ji-woo Park",
        "country": "KR",
        "email": "jiwoo@example.org",
        "city": "Busan",
    }

    entries = hook_client.get(
        f"/api/v1/admin/petitions/{demo.slug}/letters", headers=admin.headers
    ).json()["data"]
    [printed] = [e for e in entries if e["channel"] == "postal"]
    posted = hook_client.post(
        f"/api/v1/admin/letters/{printed['id']}/posted", headers=admin.headers
    )
    assert posted.status_code == 200
    with worker_running(hook_settings, engine):
        requests = receiver.wait_for(2)
    assert requests[1].json["data"]["letter"] == {
        "id": printed["id"],
        "kind": "supporter",
        "channel": "postal",
        "target": "eu-hr-vp",
    }


def test_a_petition_delivery_is_announced_with_counts_and_never_the_signatories_names(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    engine: Engine,
    demo: Petition,
    admin: Account,
    receiver: Receiver,
    smtp: Mailbox,
) -> None:
    register(
        hook_client,
        admin,
        slug_of(session, demo),
        receiver.url,
        events=["petition.delivered", "letter.sent"],
        scope="full",
    )
    for i, country in enumerate(["UA", "KR", "KR"]):
        signature_id = sign(
            session,
            hook_settings,
            demo,
            f"signer{i}@example.org",
            name=f"Signer Number{i}",
            country=country,
        )
        confirm(hook_client, hook_settings, signature_id)
    response = hook_client.post(
        f"/api/v1/admin/petitions/{demo.slug}/deliveries", json={}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    targets = session.exec(select(Target).where(Target.retired_at == None)).all()  # noqa: E711
    with worker_running(hook_settings, engine):
        requests = receiver.wait_for(1 + len(targets))

    delivered = [r for r in requests if r.json["type"] == "petition.delivered"]
    assert len(delivered) == 1
    delivery = delivered[0].json["data"]["delivery"]
    assert delivery["number"] == 1 and delivery["confirmed_count"] == 3
    assert delivery["countries"] == [{"country": "KR", "count": 2}, {"country": "UA", "count": 1}]
    assert sorted(delivery["targets"]) == sorted(t.key for t in targets)
    assert len(delivery["annex_sha256"]) == 64 and delivery["annex_rows"] == 3
    sent = [r.json["data"]["letter"] for r in requests if r.json["type"] == "letter.sent"]
    assert sorted(letter["target"] for letter in sent) == sorted(t.key for t in targets)
    assert all(letter["kind"] == "petition_delivery" for letter in sent)
    assert all(letter["delivery_number"] == 1 for letter in sent)
    for request in requests:  # even at scope "full": the names go to the officials only
        assert b"Number" not in request.body and b"signer" not in request.body


def _post_stripe(client: TestClient, event: dict[str, Any]) -> None:
    payload = json.dumps(event).encode()
    response = client.post(
        "/api/v1/stripe/webhook",
        content=payload,
        headers={
            "Stripe-Signature": stripe_events.sign(payload, STRIPE_WEBHOOK_SECRET),
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 200, response.text


def test_a_payment_and_its_refunds_are_announced_once_each_in_order(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    engine: Engine,
    demo: Petition,
    admin: Account,
    receiver: Receiver,
    fake_stripe: FakeStripe,
) -> None:
    slug = slug_of(session, demo)
    _, secret = register(
        hook_client,
        admin,
        slug,
        receiver.url,
        events=["donation.paid", "donation.refunded"],
        scope="counts",
    )
    started = hook_client.post(
        f"/api/v1/campaigns/{slug}/donations",
        json={"amount": 5000, "currency": "EUR", "frequency": "once"},
    )
    assert started.status_code == 201, started.text
    ref = started.json()["donation"]
    [checkout] = [s for s in fake_stripe.sessions.values() if s["metadata"]["donation"] == ref]
    completed = stripe_events.event(
        "checkout.session.completed",
        stripe_events.completed_session(
            checkout, payment_intent="pi_webhook", email="donor@example.org", name="Donor Name"
        ),
    )
    for _ in range(2):  # Stripe redelivers: announced once
        _post_stripe(hook_client, completed)
    for refunded in (2000, 5000):
        charge = stripe_events.charge(
            payment_intent="pi_webhook", amount=5000, currency="eur", amount_refunded=refunded
        )
        _post_stripe(hook_client, stripe_events.event("charge.refunded", charge))

    with worker_running(hook_settings, engine):
        requests = receiver.wait_for(3)
    assert [(r.json["type"], r.json["data"]["donation"]["amount_refunded"]) for r in requests] == [
        ("donation.paid", 0),
        ("donation.refunded", 2000),
        ("donation.refunded", 5000),
    ]
    assert requests[0].json["data"] == {
        "donation": {"amount": 5000, "amount_refunded": 0, "currency": "EUR", "frequency": "once"}
    }
    for request in requests:  # counts only: nobody named
        assert b"donor" not in request.body.lower() and ref.encode() not in request.body
