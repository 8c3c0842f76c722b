"""Each abuse control, shown working: rate limits, lists, honeypot, CAPTCHA, reports,
invalidation, release, the switch, and IPs stored only as hashes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import Session, col, select

from app.abuse.service import ip_hash
from app.core.config import Settings
from app.email.models import OutboxMessage
from app.main import create_app
from app.signatures.models import Signature, SignatureStatus
from tests.conftest import Account, Mailbox, confirm_link
from tests.factories import make_petition, signer

IP = "203.0.113.7"
OTHER_IP = "198.51.100.9"


@pytest.fixture
def limited(settings: Settings, engine: Any) -> Iterator[Callable[..., TestClient]]:
    """A client for an app with the given settings, its requests coming from `ip`."""
    clients: list[TestClient] = []

    def make(ip: str = IP, **overrides: Any) -> TestClient:
        client = TestClient(create_app(settings.model_copy(update=overrides)), client=(ip, 5000))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def sign(client: TestClient, slug: str, **data: Any) -> Any:
    return client.post(f"/api/v1/petitions/{slug}/signatures", json=signer(**data))


def statuses(session: Session) -> list[str]:
    return [s.status for s in session.exec(select(Signature).order_by(col(Signature.id))).all()]


def queued_confirmations(session: Session) -> int:
    return sum(
        1 for m in session.exec(select(OutboxMessage)).all() if m.kind == "signature_confirmation"
    )


def test_over_the_ip_limit_signatures_are_held_with_the_same_answer(
    limited: Callable[..., TestClient], session: Session
) -> None:
    petition = make_petition(session)
    client = limited(RATE_LIMIT_IP_PER_MINUTE=3)
    answers = [sign(client, petition.slug) for _ in range(5)]
    assert {(r.status_code, r.text) for r in answers} == {
        (202, '{"status":"pending_confirmation"}')
    }
    assert statuses(session) == ["pending"] * 3 + ["suspect"] * 2
    assert queued_confirmations(session) == 3  # held ones get no e-mail
    held = session.exec(select(Signature).where(Signature.status == "suspect")).all()
    assert {s.held_reason for s in held} == {"rate-ip"}
    # Another address is not affected.
    assert sign(limited(OTHER_IP, RATE_LIMIT_IP_PER_MINUTE=3), petition.slug).status_code == 202
    assert statuses(session)[-1] == "pending"


def test_the_hourly_ip_limit_holds_too(
    limited: Callable[..., TestClient], session: Session
) -> None:
    petition = make_petition(session)
    client = limited(RATE_LIMIT_IP_PER_HOUR=2)
    for _ in range(3):
        sign(client, petition.slug)
    assert statuses(session) == ["pending", "pending", "suspect"]


def test_domain_limits_spare_large_providers(
    limited: Callable[..., TestClient], session: Session
) -> None:
    petition = make_petition(session)
    overrides = {"RATE_LIMIT_DOMAIN_PER_MINUTE": 2}
    for i in range(3):
        sign(limited(f"192.0.2.{i + 1}", **overrides), petition.slug, email=f"bot{i}@spam.example")
    for i in range(3):
        sign(limited(f"192.0.2.{i + 10}", **overrides), petition.slug, email=f"person{i}@gmail.com")
    rows = session.exec(select(Signature).order_by(col(Signature.id))).all()
    assert [(r.email_domain, r.status) for r in rows] == [
        ("spam.example", "pending"),
        ("spam.example", "pending"),
        ("spam.example", "suspect"),
        ("gmail.com", "pending"),
        ("gmail.com", "pending"),
        ("gmail.com", "pending"),
    ]


def test_allow_and_block_lists(
    limited: Callable[..., TestClient], session: Session, admin: Account
) -> None:
    petition = make_petition(session)
    client = limited(RATE_LIMIT_IP_PER_MINUTE=1)
    rules = [
        {"kind": "ip", "value": IP, "action": "allow", "note": "office NAT"},
        {"kind": "domain", "value": "Spam.Example", "action": "block"},
        {"kind": "email", "value": "J.Troll+x@Gmail.com", "action": "block"},
    ]
    for rule in rules:
        response = client.post("/api/v1/admin/abuse/rules", json=rule, headers=admin.headers)
        assert response.status_code == 201, response.text
    assert (
        client.post("/api/v1/admin/abuse/rules", json=rules[0], headers=admin.headers).status_code
        == 409
    )
    listed = client.get("/api/v1/admin/abuse/rules", headers=admin.headers).json()
    assert listed[0]["value"] == ip_hash(client.app.state.settings, IP)  # type: ignore[attr-defined]
    assert IP not in json.dumps(listed)

    for _ in range(3):  # an allowed IP is never rate-limited
        sign(client, petition.slug)
    sign(client, petition.slug, email="someone@spam.example")
    sign(client, petition.slug, email="jtroll@gmail.com")
    assert statuses(session) == ["pending"] * 3 + ["suspect"] * 2
    assert {s.held_reason for s in session.exec(select(Signature)).all()} == {None, "blocked"}

    rule_id = listed[1]["id"]
    assert (
        client.delete(f"/api/v1/admin/abuse/rules/{rule_id}", headers=admin.headers).status_code
        == 204
    )
    sign(client, petition.slug, email="second@spam.example")
    assert statuses(session)[-1] == "pending"


def test_honeypot_filled_by_a_bot_is_held_silently(client: TestClient, session: Session) -> None:
    petition = make_petition(session)
    page = client.get(f"/petitions/{petition.slug}").text
    assert 'name="website"' in page and 'tabindex="-1"' in page
    form = {"name": "Bot", "email": "bot@example.org", "country": "KR", "locale": "en"}
    human = client.post(f"/petitions/{petition.slug}/sign", data=form, follow_redirects=False)
    bot = client.post(
        f"/petitions/{petition.slug}/sign",
        data={**form, "email": "bot2@example.org", "website": "http://spam"},
        follow_redirects=False,
    )
    assert (human.status_code, bot.status_code) == (303, 303)
    assert human.headers["location"] == bot.headers["location"]
    assert statuses(session) == ["pending", "suspect"]
    assert queued_confirmations(session) == 1


class FakeCaptcha(BaseHTTPRequestHandler):
    """A siteverify endpoint: the answer "good" passes."""

    received: list[dict[str, list[str]]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        FakeCaptcha.received.append(body)
        ok = body.get("response") == ["good"] and body.get("secret") == ["captcha-secret"]
        payload = json.dumps({"success": ok}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def captcha_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeCaptcha)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeCaptcha.received.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/siteverify"
    server.shutdown()


def test_captcha_is_verified_on_the_server(
    limited: Callable[..., TestClient], session: Session, captcha_url: str
) -> None:
    petition = make_petition(session)
    client = limited(
        CAPTCHA_PROVIDER="turnstile",
        CAPTCHA_SITE_KEY="site-key",
        CAPTCHA_SECRET=SecretStr("captcha-secret"),
        CAPTCHA_VERIFY_URL=captcha_url,
    )
    missing = sign(client, petition.slug)
    wrong = sign(client, petition.slug, captcha_token="bad")
    assert (missing.status_code, wrong.status_code) == (422, 422)
    assert wrong.json()["errors"][0]["field"] == "captcha_token"
    assert sign(client, petition.slug, captcha_token="good").status_code == 202
    assert FakeCaptcha.received[-1]["remoteip"] == [IP]

    page = client.get(f"/petitions/{petition.slug}").text
    assert 'class="cf-turnstile" data-sitekey="site-key"' in page
    form = {"name": "Kim", "email": "kim@example.org", "country": "KR", "locale": "en"}
    refused = client.post(f"/petitions/{petition.slug}/sign", data=form)
    assert refused.status_code == 422 and 'id="e-captcha"' in refused.text
    passed = client.post(
        f"/petitions/{petition.slug}/sign",
        data={**form, "cf-turnstile-response": "good"},
        follow_redirects=False,
    )
    assert passed.status_code == 303
    assert len(session.exec(select(Signature)).all()) == 2


def test_trending_report_invalidation_and_release(
    limited: Callable[..., TestClient],
    session: Session,
    admin: Account,
    smtp: Mailbox,
    outbox: Callable[[], int],
) -> None:
    petition = make_petition(session)
    overrides = {"RATE_LIMIT_IP_PER_MINUTE": 2}
    bot, person = limited(IP, **overrides), limited(OTHER_IP, **overrides)
    for i in range(4):
        sign(bot, petition.slug, email=f"bot{i}@farm.example", country="US")
    sign(person, petition.slug, email="olena@example.org", country="UA")
    outbox()
    for message in smtp.wait_for(3):  # two from the bot before the limit, one from the person
        bot.post(confirm_link(message))
    base = f"/api/v1/admin/petitions/{petition.slug}"
    count = bot.get(f"/api/v1/petitions/{petition.slug}").json()
    assert count["signature_count"] == 3

    report = bot.get(f"{base}/abuse/trending?minutes=60", headers=admin.headers).json()
    top = report["ips"][0]
    assert top == {"source": ip_hash(bot.app.state.settings, IP), "signatures": 4, "held": 2}  # type: ignore[attr-defined]
    assert report["domains"][0] == {"source": "farm.example", "signatures": 4, "held": 2}

    # The bot's two confirmed signatures stop counting; the person's stays.
    result = bot.post(f"{base}/signatures/invalidate", json={"ip": IP}, headers=admin.headers)
    assert result.json() == {"invalidated": 4, "uncounted": 2, "signature_count": 1}
    detail = bot.get(f"/api/v1/petitions/{petition.slug}").json()
    assert detail["signature_count"] == 1
    assert detail["signatures_by_country"] == [{"country": "UA", "count": 1}]
    stats = bot.get(f"/api/v1/petitions/{petition.slug}/stats").json()
    assert sum(h["count"] for h in stats["by_hour"]) == 1
    assert (
        bot.post(f"{base}/signatures/invalidate", json={}, headers=admin.headers).status_code == 422
    )
    audit = bot.get("/api/v1/admin/audit", headers=admin.headers).json()
    assert any(e["action"] == "signatures.invalidate" for e in audit)
    assert IP not in json.dumps(audit)

    # A false alarm: held signatures released get their confirmation e-mail.
    sign(person, petition.slug, email="second@example.org")
    sign(person, petition.slug, email="third@example.org")  # over the person's limit: held
    smtp.clear()
    released = bot.post(
        f"{base}/signatures/release",
        json={"ip_hash": ip_hash(bot.app.state.settings, OTHER_IP)},  # type: ignore[attr-defined]
        headers=admin.headers,
    )
    assert released.json() == {"released": 1}
    outbox()
    recipients = sorted(str(m["To"]) for m in smtp.wait_for(2))
    # second@ was within the limit (its e-mail was queued when it signed); third@ was released.
    assert [r.split("<")[-1].rstrip(">") for r in recipients] == [
        "second@example.org",
        "third@example.org",
    ]


def test_the_switch_stops_and_resumes_signing(
    client: TestClient, session: Session, admin: Account
) -> None:
    petition = make_petition(session)
    switch = f"/api/v1/admin/petitions/{petition.slug}/signing"
    assert client.post(switch, json={"paused": True}, headers=admin.headers).json() == {
        "paused": True
    }
    refused = sign(client, petition.slug)
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("petition-paused")
    page = client.get(f"/petitions/{petition.slug}").text
    assert "paused" in page and '<form class="sign"' not in page
    client.post(switch, json={"paused": False}, headers=admin.headers)
    assert sign(client, petition.slug).status_code == 202


def test_ip_addresses_are_stored_only_as_hashes(
    limited: Callable[..., TestClient], session: Session, engine: Any
) -> None:
    petition = make_petition(session)
    sign(limited(), petition.slug)
    signature = session.exec(select(Signature)).one()
    assert signature.ip_hash == ip_hash(limited().app.state.settings, IP)  # type: ignore[attr-defined]
    assert len(signature.ip_hash or "") == 32
    row = json.dumps({name: str(getattr(signature, name)) for name in Signature.model_fields})
    assert IP not in row


def test_organisers_only_reach_their_petitions_and_not_the_lists(
    client: TestClient, session: Session, make_account: Callable[..., Account]
) -> None:
    petition = make_petition(session)
    stranger = make_account("organiser")
    base = f"/api/v1/admin/petitions/{petition.slug}"
    assert client.get(f"{base}/abuse/trending", headers=stranger.headers).status_code == 404
    assert (
        client.post(
            f"{base}/signatures/invalidate", json={"country": "KR"}, headers=stranger.headers
        ).status_code
        == 404
    )
    assert (
        client.post(f"{base}/signing", json={"paused": True}, headers=stranger.headers).status_code
        == 404
    )
    assert client.get("/api/v1/admin/abuse/rules", headers=stranger.headers).status_code == 403
    assert statuses(session) == []
    assert SignatureStatus.suspect == "suspect"
