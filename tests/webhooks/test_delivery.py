"""Webhooks reach a real HTTP endpoint through the real worker: signed, once, in order, only
to their own campaign, with no more personal data than the endpoint's scope."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.campaigns.models import Campaign
from app.core.config import Settings
from app.email.models import OutboxMessage, OutboxStatus
from app.rights.service import manage_token
from app.webhooks.models import WebhookDelivery
from tests.conftest import Account
from tests.factories import make_petition
from tests.webhooks.conftest import Receiver, confirm, register, sign
from tests.worker_thread import worker_running


def campaign_slug(session: Session, petition: Any) -> str:
    campaign = session.get(Campaign, petition.campaign_id)
    assert campaign is not None
    return campaign.slug


def withdraw(client: TestClient, settings: Settings, signature_id: int) -> None:
    token = manage_token(settings, signature_id=signature_id)
    response = client.post("/api/v1/signatures/manage/withdraw", json={"token": token})
    assert response.status_code == 200, response.text


def test_a_confirmed_signature_is_delivered_signed_per_standard_webhooks(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    engine: Engine,
    make_account: Any,
    receiver: Receiver,
) -> None:
    petition = make_petition(session, goal=10)
    slug = campaign_slug(session, petition)
    organiser: Account = make_account("organiser", campaigns=[slug])
    endpoint_id, secret = register(hook_client, organiser, slug, receiver.url)
    assert secret.startswith("whsec_")

    signature_id = sign(session, hook_settings, petition, "olena@example.org", country="UA")
    confirm(hook_client, hook_settings, signature_id)
    with worker_running(hook_settings, engine):
        [request] = receiver.wait_for(1)

    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "signature.confirmed"
    assert payload["campaign"] == slug
    assert payload["data"] == {
        "petition": petition.slug,
        "signature_count": 1,
        "signature": {"id": signature_id, "name": "Olena Kovalenko", "country": "UA"},
    }
    assert request.headers["webhook-id"].startswith("msg_")
    assert request.headers["content-type"] == "application/json"
    # The signature is the endpoint's own: another secret, or a changed body, does not verify.
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 11).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b'"UA"', b'"RU"'), request.headers)

    # The attempts log says what happened; the body of a delivered event is not kept.
    attempts = hook_client.get(
        f"/api/v1/admin/campaigns/{slug}/webhooks/{endpoint_id}/attempts",
        headers=organiser.headers,
    ).json()["data"]
    assert [(a["event"], a["delivered"], a["status_code"], a["attempt"]) for a in attempts] == [
        ("signature.confirmed", True, 200, 1)
    ]
    assert attempts[0]["message_id"] == request.headers["webhook-id"]
    assert session.exec(select(WebhookDelivery)).all() == []
    message = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "webhook")).one()
    assert message.status == OutboxStatus.sent and message.recipient is None


def _events_by_signature(requests: list[Any]) -> dict[int, list[str]]:
    by_signature: dict[int, list[str]] = defaultdict(list)
    for request in requests:
        body = request.json
        by_signature[body["data"]["signature"]["id"]].append(body["type"])
    return by_signature


def test_an_endpoint_down_for_a_while_then_back_gets_every_event_once_in_order(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    engine: Engine,
    make_account: Any,
    receiver: Receiver,
) -> None:
    petition = make_petition(session, goal=100)
    slug = campaign_slug(session, petition)
    organiser: Account = make_account("organiser", campaigns=[slug])
    endpoint_id, secret = register(
        hook_client,
        organiser,
        slug,
        receiver.url,
        events=["signature.confirmed", "signature.withdrawn"],
    )
    signatures = [
        sign(session, hook_settings, petition, f"signer{i}@example.org") for i in range(6)
    ]

    receiver.status = 500  # up, but failing
    with worker_running(hook_settings, engine):
        for signature_id in signatures:
            confirm(hook_client, hook_settings, signature_id)
        for signature_id in signatures[::2]:  # withdrawn while their confirmation still waits
            withdraw(hook_client, hook_settings, signature_id)
        deadline = time.monotonic() + 10
        while len(receiver.all()) < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        receiver.stop()  # then down altogether: connections refused
        time.sleep(1.0)
        receiver.status = 200
        receiver.start()  # back
        delivered = receiver.wait_for(9, timeout=60)
        time.sleep(0.5)  # anything more would be a duplicate

    delivered = receiver.accepted()
    ids = [request.headers["webhook-id"] for request in delivered]
    assert len(ids) == len(set(ids)) == 9, "every event once"
    for request in delivered:
        Webhook(secret).verify(request.body, request.headers)
    expected = {
        signature_id: ["signature.confirmed", "signature.withdrawn"]
        if index % 2 == 0
        else ["signature.confirmed"]
        for index, signature_id in enumerate(signatures)
    }
    assert _events_by_signature(delivered) == expected
    # Never a withdrawal before its signature's confirmation was accepted, even among the
    # requests the endpoint failed.
    seen_confirmed: set[int] = set()
    for request in receiver.all():
        body = request.json
        signature_id = body["data"]["signature"]["id"]
        if body["type"] == "signature.withdrawn":
            assert signature_id in seen_confirmed, "a withdrawal overtook its confirmation"
        elif 200 <= request.answered < 300:
            seen_confirmed.add(signature_id)
    # The counts carried are the counts at each event, in order.
    attempts = hook_client.get(
        f"/api/v1/admin/campaigns/{slug}/webhooks/{endpoint_id}/attempts?limit=500",
        headers=organiser.headers,
    ).json()["data"]
    failed = [a for a in attempts if not a["delivered"]]
    assert any(a["status_code"] == 500 for a in failed)
    assert any(a["status_code"] is None and a["error"] for a in failed)  # refused
    assert sum(a["delivered"] for a in attempts) == 9
    endpoint = hook_client.get(
        f"/api/v1/admin/campaigns/{slug}/webhooks", headers=organiser.headers
    ).json()["data"][0]
    assert endpoint["enabled"] is True and endpoint["failing_since"] is None


def test_a_campaigns_webhook_never_carries_another_campaigns_events(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    engine: Engine,
    admin: Account,
    receivers: Any,
) -> None:
    first, second = make_petition(session), make_petition(session)
    a, b = campaign_slug(session, first), campaign_slug(session, second)
    receiver_a, receiver_b = receivers(), receivers()
    register(hook_client, admin, a, receiver_a.url)
    register(hook_client, admin, b, receiver_b.url)
    for i in range(3):
        confirm(
            hook_client, hook_settings, sign(session, hook_settings, first, f"a{i}@example.org")
        )
    confirm(hook_client, hook_settings, sign(session, hook_settings, second, "b@example.org"))

    with worker_running(hook_settings, engine):
        receiver_a.wait_for(3)
        receiver_b.wait_for(1)
        time.sleep(0.3)
    assert {(r.json["campaign"], r.json["data"]["petition"]) for r in receiver_a.all()} == {
        (a, first.slug)
    }
    assert len(receiver_a.all()) == 3
    assert [(r.json["campaign"], r.json["data"]["petition"]) for r in receiver_b.all()] == [
        (b, second.slug)
    ]


def test_each_scope_carries_only_its_personal_data(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    engine: Engine,
    admin: Account,
    receivers: Any,
) -> None:
    petition = make_petition(session)
    slug = campaign_slug(session, petition)
    by_scope = {scope: receivers() for scope in ("counts", "names", "full")}
    for scope, receiver in by_scope.items():
        register(hook_client, admin, slug, receiver.url, scope=scope)
    signature_id = sign(
        session,
        hook_settings,
        petition,
        "kim.minjun@example.org",
        name="Kim Min-jun",
        country="KR",
        postcode="04524",
        consent_updates=True,
    )
    confirm(hook_client, hook_settings, signature_id)
    with worker_running(hook_settings, engine):
        bodies = {scope: r.wait_for(1)[0] for scope, r in by_scope.items()}

    counts = bodies["counts"]
    assert counts.json["data"] == {"petition": petition.slug, "signature_count": 1}
    for personal in (b"Kim", b"kim.minjun", b"KR", b"04524"):
        assert personal not in counts.body
    assert bodies["names"].json["data"]["signature"] == {
        "id": signature_id,
        "name": "Kim Min-jun",
        "country": "KR",
    }
    assert b"kim.minjun" not in bodies["names"].body and b"04524" not in bodies["names"].body
    assert bodies["full"].json["data"]["signature"] == {
        "id": signature_id,
        "name": "Kim Min-jun",
        "country": "KR",
        "email": "kim.minjun@example.org",
        "postcode": "04524",
        "locale": "en",
        "consent_updates": True,
    }


def test_events_an_endpoint_did_not_choose_are_not_queued_for_it(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    admin: Account,
    receiver: Receiver,
) -> None:
    petition = make_petition(session)
    slug = campaign_slug(session, petition)
    register(hook_client, admin, slug, receiver.url, events=["signature.withdrawn"])
    confirm(hook_client, hook_settings, sign(session, hook_settings, petition, "x@example.org"))
    assert session.exec(select(OutboxMessage).where(OutboxMessage.kind == "webhook")).all() == []
