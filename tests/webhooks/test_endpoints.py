"""Registering and managing endpoints through the admin API: who may, what is refused (SSRF),
what is audited, and how the secret is kept."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.audit.models import AuditEntry
from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.sealing import Unsealable, unseal
from app.email.models import OutboxMessage
from app.webhooks import addresses
from app.webhooks.models import WebhookEndpoint
from app.webhooks.service import SEAL_PURPOSE
from tests.conftest import Account
from tests.factories import make_petition
from tests.webhooks.conftest import Receiver, confirm, register, sign
from tests.worker_thread import worker_running


def slug_of(session: Session, petition: Any) -> str:
    campaign = session.get(Campaign, petition.campaign_id)
    assert campaign is not None
    return campaign.slug


def hooks(client: TestClient, account: Account, slug: str) -> Any:
    return client.get(f"/api/v1/admin/campaigns/{slug}/webhooks", headers=account.headers)


def test_organisers_manage_their_campaigns_endpoints_and_every_change_is_audited(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    make_account: Any,
    receiver: Receiver,
) -> None:
    petition, other = make_petition(session), make_petition(session)
    slug, other_slug = slug_of(session, petition), slug_of(session, other)
    organiser: Account = make_account("organiser", campaigns=[slug])
    outsider: Account = make_account("organiser", campaigns=[other_slug])

    endpoint_id, secret = register(
        hook_client, organiser, slug, receiver.url, events=["signature.confirmed", "letter.sent"]
    )
    listed = hooks(hook_client, organiser, slug).json()
    assert listed["count"] == 1
    [entry] = listed["data"]
    assert entry["url"] == receiver.url and entry["scope"] == "names" and entry["enabled"]
    assert entry["events"] == ["signature.confirmed", "letter.sent"]
    assert "secret" not in entry and secret not in str(listed)

    # Another campaign's organiser learns nothing, can change nothing.
    base = f"/api/v1/admin/campaigns/{slug}/webhooks"
    assert hooks(hook_client, outsider, slug).status_code == 404
    for method, path in [
        ("post", f"{base}/{endpoint_id}/disable"),
        ("delete", f"{base}/{endpoint_id}"),
        ("get", f"{base}/{endpoint_id}/attempts"),
    ]:
        response = getattr(hook_client, method)(path, headers=outsider.headers)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    # Their own campaign's path does not reach this endpoint either.
    mine = f"/api/v1/admin/campaigns/{other_slug}/webhooks/{endpoint_id}/disable"
    assert hook_client.post(mine, headers=outsider.headers).status_code == 404
    assert hook_client.get(base).status_code == 401

    # Disabled: events are not queued for it; enabled again: they are.
    disabled = hook_client.post(f"{base}/{endpoint_id}/disable", headers=organiser.headers)
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    assert disabled.json()["disabled_reason"] == "organiser"
    confirm(hook_client, hook_settings, sign(session, hook_settings, petition, "a@example.org"))
    assert session.exec(select(OutboxMessage).where(OutboxMessage.kind == "webhook")).all() == []
    enabled = hook_client.post(f"{base}/{endpoint_id}/enable", headers=organiser.headers)
    assert enabled.json()["enabled"] is True and enabled.json()["disabled_reason"] is None
    confirm(hook_client, hook_settings, sign(session, hook_settings, petition, "b@example.org"))
    assert (
        len(session.exec(select(OutboxMessage).where(OutboxMessage.kind == "webhook")).all()) == 1
    )

    assert hook_client.delete(f"{base}/{endpoint_id}", headers=organiser.headers).status_code == 204
    assert hooks(hook_client, organiser, slug).json() == {"data": [], "count": 0}
    assert hook_client.delete(f"{base}/{endpoint_id}", headers=organiser.headers).status_code == 404

    audited = session.exec(
        select(AuditEntry)
        .where(AuditEntry.subject == f"webhook:{endpoint_id}")
        .order_by(col(AuditEntry.id))
    ).all()
    assert [a.action for a in audited] == [
        "webhook.create",
        "webhook.disable",
        "webhook.enable",
        "webhook.delete",
    ]
    assert all(a.actor_email == organiser.email for a in audited)
    # The audit log keeps the endpoint's origin, not the path and query that may hold a token.
    assert audited[0].details["url"] == f"http://127.0.0.1:{receiver.port}"
    assert audited[0].details["scope"] == "names"


def test_the_secret_is_stored_sealed_and_opens_only_with_the_key(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    admin: Account,
    receiver: Receiver,
) -> None:
    petition = make_petition(session)
    _, secret = register(hook_client, admin, slug_of(session, petition), receiver.url)
    stored = session.exec(select(WebhookEndpoint)).one()
    assert secret not in stored.secret_sealed and secret[6:] not in stored.secret_sealed
    assert unseal(hook_settings, stored.secret_sealed, purpose=SEAL_PURPOSE) == secret

    rotated = hook_settings.model_copy(
        update={
            "SECRET_KEY": type(hook_settings.SECRET_KEY)("a-new-secret-key-that-is-long-enough-42"),
            "SECRET_KEY_FALLBACKS": hook_settings.SECRET_KEY,
        }
    )
    assert unseal(rotated, stored.secret_sealed, purpose=SEAL_PURPOSE) == secret
    lost = rotated.model_copy(update={"SECRET_KEY_FALLBACKS": type(hook_settings.SECRET_KEY)("")})
    with pytest.raises(Unsealable):
        unseal(lost, stored.secret_sealed, purpose=SEAL_PURPOSE)
    with pytest.raises(Unsealable):
        unseal(hook_settings, stored.secret_sealed, purpose="another-purpose")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.org/x"}, "url"),
        ({"url": "https://user:pw@example.org/x"}, "url"),
        ({"url": "http://10.0.0.7/hook"}, "url"),
        ({"url": "http://192.168.1.20/hook"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "url"),
        ({"url": "http://[::ffff:10.0.0.7]/hook"}, "url"),
        ({"url": "http://[fd00::1]/hook"}, "url"),
        ({"url": "http://0.0.0.0:8000/"}, "url"),
        ({"url": "http://127.0.0.1:8000/hook"}, "url"),  # loopback: not allowed by default
        ({"url": "http://localhost:8000/hook"}, "url"),  # a name that resolves to it
        ({"url": "https://nonexistent.invalid/hook"}, "url"),
        ({"events": []}, "events"),
        ({"events": ["signature.signed"]}, "events.0"),
        ({"scope": "everything"}, "scope"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_registrations_are_problems_naming_the_field(
    client: TestClient, session: Session, admin: Account, body: dict[str, Any], field: str
) -> None:
    petition = make_petition(session)
    request = {"url": "https://8.8.8.8/hook", "events": ["signature.confirmed"], "scope": "counts"}
    response = client.post(
        f"/api/v1/admin/campaigns/{slug_of(session, petition)}/webhooks",
        json={**request, **body},
        headers=admin.headers,
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert session.exec(select(WebhookEndpoint)).all() == []


def test_a_public_address_is_accepted_and_production_requires_https(
    client: TestClient, session: Session, admin: Account, settings: Settings
) -> None:
    petition = make_petition(session)
    response = client.post(
        f"/api/v1/admin/campaigns/{slug_of(session, petition)}/webhooks",
        json={"url": "http://8.8.8.8/hook", "events": ["donation.paid"], "scope": "counts"},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    production = settings.model_copy(update={"ENVIRONMENT": "production"})
    with pytest.raises(addresses.Refused, match="https"):
        addresses.check("http://8.8.8.8/hook", production)
    assert addresses.check("https://8.8.8.8/hook", production).host == "8.8.8.8"


def test_an_address_that_became_private_is_refused_at_send_time(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    engine: Engine,
    admin: Account,
    receiver: Receiver,
) -> None:
    # Registered while the name pointed somewhere allowed; by the time of sending it points to
    # an address webhooks may not reach (here: loopback, no longer allowed).
    petition = make_petition(session)
    slug = slug_of(session, petition)
    endpoint_id, _ = register(
        hook_client, admin, slug, f"http://localhost:{receiver.port}/hook", scope="full"
    )
    confirm(hook_client, hook_settings, sign(session, hook_settings, petition, "c@example.org"))
    strict = hook_settings.model_copy(update={"WEBHOOK_ALLOW_LOOPBACK": False})
    with worker_running(strict, engine):
        deadline_attempts = _wait_for_attempts(hook_client, admin, slug, endpoint_id, 2)
    assert receiver.all() == [], "nothing may reach the refused address"
    assert all(not a["delivered"] for a in deadline_attempts)
    assert "loopback" in deadline_attempts[0]["error"]


def _wait_for_attempts(
    client: TestClient, account: Account, slug: str, endpoint_id: int, count: int
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        data: list[dict[str, Any]] = client.get(
            f"/api/v1/admin/campaigns/{slug}/webhooks/{endpoint_id}/attempts",
            headers=account.headers,
        ).json()["data"]
        if len(data) >= count:
            return data
        time.sleep(0.05)
    raise AssertionError(f"expected {count} attempts")
