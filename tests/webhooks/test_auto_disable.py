"""An endpoint that fails for a day is switched off, and its campaign's organisers are told by
e-mail in their language; one that recovers in time is not."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from app.auth.models import User
from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.db import utcnow
from app.email.models import OutboxMessage, OutboxStatus
from app.webhooks.models import WebhookEndpoint
from tests.conftest import Account, Mailbox, body_text
from tests.factories import make_petition
from tests.webhooks.conftest import Receiver, confirm, register, sign
from tests.worker_thread import worker_running


def failing_for(session: Session, endpoint_id: int, hours: float) -> None:
    """Time passes: the endpoint has been failing for `hours`."""
    session.execute(
        update(WebhookEndpoint)
        .where(col(WebhookEndpoint.id) == endpoint_id)
        .values(failing_since=utcnow() - timedelta(hours=hours))
    )
    session.commit()


def endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    return session.exec(select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)).one()


def wait_until(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_day_of_failures_switches_the_endpoint_off_and_tells_the_organisers(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    engine: Engine,
    make_account: Any,
    receiver: Receiver,
    smtp: Mailbox,
) -> None:
    petition = make_petition(session)
    campaign = session.get(Campaign, petition.campaign_id)
    assert campaign is not None
    ukrainian: Account = make_account("organiser", campaigns=[campaign.slug])
    english: Account = make_account("organiser", campaigns=[campaign.slug])
    user = session.exec(select(User).where(User.email == ukrainian.email)).one()
    user.locale = "uk"
    session.add(user)
    session.commit()
    endpoint_id, _ = register(hook_client, ukrainian, campaign.slug, receiver.url)

    receiver.status = 503
    confirm(hook_client, hook_settings, sign(session, hook_settings, petition, "a@example.org"))
    with worker_running(hook_settings, engine):
        wait_until(lambda: len(receiver.all()) >= 2)
        assert endpoint(session, endpoint_id).failing_since is not None
        # Failing for 23 hours: retried, still on.
        failing_for(session, endpoint_id, 23)
        seen = len(receiver.all())
        wait_until(lambda: len(receiver.all()) >= seen + 2)
        assert endpoint(session, endpoint_id).disabled_at is None
        # A day: the next failure switches it off.
        failing_for(session, endpoint_id, 24.1)
        wait_until(lambda: endpoint(session, endpoint_id).disabled_at is not None)
        mails = smtp.wait_for(2)
        # The event waiting for it is dropped, not retried for ever.
        wait_until(
            lambda: (
                session.exec(
                    select(OutboxMessage.status).where(OutboxMessage.kind == "webhook")
                ).one()
                == OutboxStatus.cancelled
            )
        )
        after = len(receiver.all())
        time.sleep(0.3)
        assert len(receiver.all()) == after

    switched_off = endpoint(session, endpoint_id)
    assert switched_off.disabled_reason == "failing"
    by_recipient = {str(m["To"].addresses[0].addr_spec): m for m in mails}
    assert set(by_recipient) == {ukrainian.email, english.email}
    uk = by_recipient[ukrainian.email]
    assert uk["Subject"] == f"Вебхук кампанії «{campaign.translations['en']['name']}» вимкнено"
    assert receiver.url in body_text(uk) and "годин" in body_text(uk)
    assert "503" in body_text(uk)  # the last attempt's answer
    en = by_recipient[english.email]
    assert "switched off" in body_text(en) and "more than 24 hours" in body_text(en)
    # Where to switch it on again: its page in the console.
    assert f"/admin/campaigns/{campaign.slug}/webhooks/{endpoint_id}\n" in body_text(en)
    listed = hook_client.get(
        f"/api/v1/admin/campaigns/{campaign.slug}/webhooks", headers=english.headers
    ).json()["data"][0]
    assert listed["enabled"] is False and listed["disabled_reason"] == "failing"

    # Switched off: new events are not queued for it.
    confirm(hook_client, hook_settings, sign(session, hook_settings, petition, "b@example.org"))
    assert (
        len(session.exec(select(OutboxMessage).where(OutboxMessage.kind == "webhook")).all()) == 1
    )

    # On again, and working: events flow, and its failures are forgotten.
    enabled = hook_client.post(
        f"/api/v1/admin/campaigns/{campaign.slug}/webhooks/{endpoint_id}/enable",
        headers=english.headers,
    ).json()
    assert enabled["enabled"] is True and enabled["failing_since"] is None
    receiver.status = 204
    confirm(hook_client, hook_settings, sign(session, hook_settings, petition, "c@example.org"))
    with worker_running(hook_settings, engine):
        [delivered] = receiver.wait_for(1)
    assert delivered.json["data"]["signature_count"] == 3
    assert endpoint(session, endpoint_id).failing_since is None


def test_a_success_clears_the_failures(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    engine: Engine,
    admin: Account,
    receiver: Receiver,
) -> None:
    petition = make_petition(session)
    campaign = session.get(Campaign, petition.campaign_id)
    assert campaign is not None
    endpoint_id, _ = register(hook_client, admin, campaign.slug, receiver.url)
    receiver.status = 500
    confirm(hook_client, hook_settings, sign(session, hook_settings, petition, "a@example.org"))
    with worker_running(hook_settings, engine):
        wait_until(lambda: len(receiver.all()) >= 1)
        failing_for(session, endpoint_id, 20)
        receiver.status = 200
        receiver.wait_for(1)
        wait_until(lambda: endpoint(session, endpoint_id).failing_since is None)
    assert endpoint(session, endpoint_id).disabled_at is None
