"""A campaign's webhooks in the console: an endpoint registered through the console, its secret
shown once, receives a signed event (verified with the `standardwebhooks` library and that
secret) and the attempt shows on its page; a failing endpoint shows its next try, then its
switching off by Chorus and why; the API's URL rules come back beside the field, in the
reader's language; switching off, on and deleting are audited as the API audits them; roles and
CSRF as everywhere."""

from __future__ import annotations

import ast
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from babel.dates import format_datetime
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select
from standardwebhooks import Webhook

from app.audit.models import AuditEntry
from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.db import utcnow
from app.core.i18n import babel_locale, catalog
from app.email.models import OutboxMessage
from app.main import create_app
from app.petitions.models import Petition
from app.webhooks import addresses
from app.webhooks.models import WebhookEndpoint
from tests.conftest import ROOT, Account
from tests.console.helpers import csrf_of, signed_in
from tests.factories import make_petition
from tests.webhooks.conftest import Receiver, confirm, sign


@pytest.fixture(scope="module")
def hook_settings(settings: Settings) -> Settings:
    """The test settings, with webhooks allowed to reach this machine (127.0.0.1)."""
    return settings.model_copy(update={"WEBHOOK_ALLOW_LOOPBACK": True})


@pytest.fixture(scope="module")
def hook_app(hook_settings: Settings) -> FastAPI:
    return create_app(hook_settings)


@pytest.fixture
def hook_client(hook_app: FastAPI, engine: Engine) -> Iterator[TestClient]:
    with TestClient(hook_app) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def petition(session: Session) -> Petition:
    return make_petition(session, goal=10)


@pytest.fixture
def slug(session: Session, petition: Petition) -> str:
    return session.exec(select(Campaign.slug).where(Campaign.id == petition.campaign_id)).one()


@pytest.fixture
def organiser(make_account: Any, slug: str) -> Account:
    account: Account = make_account("organiser", [slug])
    return account


def register(client: TestClient, slug: str, csrf: str, url: str, **fields: str) -> Any:
    data = {"url": url, "event.signature.confirmed": "1", "scope": "names", "csrf_token": csrf}
    return client.post(f"/admin/campaigns/{slug}/webhooks", data={**data, **fields})


def secret_on(page: str) -> str:
    match = re.search(r'data-testid="secret">(whsec_[^<]+)<', page)
    assert match, page
    return html.unescape(match[1])


def cells(page: str, testid: str) -> list[str]:
    """The text of each cell of a table row (tags left out)."""
    row = re.search(rf'data-testid="{testid}">(.*?)</tr>', page, re.S)
    assert row, page
    found = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row[1], re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in found]


def actions(session: Session, endpoint_id: int) -> list[tuple[str, str | None]]:
    return [
        (a.action, a.actor_email)
        for a in session.exec(
            select(AuditEntry)
            .where(AuditEntry.subject == f"webhook:{endpoint_id}")
            .order_by(col(AuditEntry.id))
        )
    ]


def test_an_endpoint_registered_in_the_console_gets_a_signed_event_verified_with_its_secret(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    petition: Petition,
    slug: str,
    organiser: Account,
    receiver: Receiver,
    outbox: Any,
) -> None:
    csrf = signed_in(hook_client, organiser.email, organiser.password)
    assert f'href="/admin/campaigns/{slug}/webhooks"' in hook_client.get("/admin/").text
    listing = hook_client.get(f"/admin/campaigns/{slug}/webhooks")
    assert listing.status_code == 200
    assert "No endpoint yet" in listing.text
    assert 'id="f-scope-counts" name="scope" value="counts" checked' in listing.text

    created = register(hook_client, slug, csrf, receiver.url)
    assert created.status_code == 200, created.text
    secret = secret_on(created.text)
    assert secret.startswith("whsec_")
    endpoint = session.exec(select(WebhookEndpoint)).one()
    assert endpoint.url == receiver.url and endpoint.events == ["signature.confirmed"]
    assert endpoint.scope == "names" and endpoint.campaign_id == petition.campaign_id
    [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "webhook.create"))
    assert entry.actor_email == organiser.email
    assert entry.details == {
        "url": f"http://127.0.0.1:{receiver.port}",
        "events": ["signature.confirmed"],
        "scope": "names",
    }
    # Shown once: not on the list nor on the endpoint's page afterwards.
    page_url = f"/admin/campaigns/{slug}/webhooks/{endpoint.id}"
    assert secret not in hook_client.get(f"/admin/campaigns/{slug}/webhooks").text
    assert "No attempt yet" in hook_client.get(page_url).text

    signature_id = sign(session, hook_settings, petition, "olena@example.org", country="UA")
    confirm(hook_client, hook_settings, signature_id)
    outbox(WEBHOOK_ALLOW_LOOPBACK=True)
    [request] = receiver.accepted()
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "signature.confirmed" and payload["campaign"] == slug
    assert payload["data"]["signature"] == {
        "id": signature_id,
        "name": "Olena Kovalenko",
        "country": "UA",
    }

    page = hook_client.get(page_url)
    assert page.status_code == 200
    assert secret not in page.text
    [attempt_id] = re.findall(r'data-testid="attempt-(\d+)"', page.text)
    when, event, attempt, result, status, error, next_try, message_id = cells(
        page.text, f"attempt-{attempt_id}"
    )
    assert (event, attempt, result, status, error, next_try) == (
        "signature.confirmed",
        "1",
        "Delivered",
        "200",
        "—",
        "—",
    )
    assert message_id == request.headers["webhook-id"] and when.endswith("UTC")
    listed = hook_client.get(f"/admin/campaigns/{slug}/webhooks").text
    assert re.search(r'data-testid="last-attempt">\s*<span[^>]*>Delivered</span>', listed)


def test_a_failing_endpoint_shows_its_next_try_then_why_chorus_switched_it_off(
    hook_client: TestClient,
    hook_settings: Settings,
    session: Session,
    petition: Petition,
    slug: str,
    organiser: Account,
    receiver: Receiver,
    outbox: Any,
) -> None:
    csrf = signed_in(hook_client, organiser.email, organiser.password)
    register(hook_client, slug, csrf, receiver.url)
    endpoint = session.exec(select(WebhookEndpoint)).one()
    page_url = f"/admin/campaigns/{slug}/webhooks/{endpoint.id}"
    receiver.status = 503
    confirm(hook_client, hook_settings, sign(session, hook_settings, petition, "a@example.org"))
    outbox(WEBHOOK_ALLOW_LOOPBACK=True, OUTBOX_RETRY_BASE_SECONDS=600)
    assert len(receiver.all()) == 1

    page = hook_client.get(page_url).text
    [attempt_id] = re.findall(r'data-testid="attempt-(\d+)"', page)
    _, event, attempt, result, status, error, next_try, _ = cells(page, f"attempt-{attempt_id}")
    assert (event, attempt, result, status, error) == (
        "signature.confirmed",
        "1",
        "Failed",
        "503",
        "answered 503",
    )
    message = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "webhook")).one()
    due = message.next_attempt_at.replace(tzinfo=UTC)
    assert due > utcnow() + timedelta(minutes=5)
    shown = format_datetime(due, "medium", tzinfo=UTC, locale=babel_locale("en"))
    assert next_try == f"{shown} UTC"
    assert "On, failing" in page and "Chorus switches it off" in page

    # A day later it still fails: Chorus switches it off, and the page says why.
    session.execute(
        update(WebhookEndpoint)
        .where(col(WebhookEndpoint.id) == endpoint.id)
        .values(failing_since=utcnow() - timedelta(hours=25))
    )
    session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message.id)
        .values(next_attempt_at=datetime.now(UTC))
    )
    session.commit()
    outbox(WEBHOOK_ALLOW_LOOPBACK=True, OUTBOX_RETRY_BASE_SECONDS=600)
    page = hook_client.get(page_url).text
    assert "Switched off by Chorus" in page
    state = re.search(r'data-testid="state">(.*?)</p>', page, re.S)
    assert state and "Every attempt from" in state[1]
    assert "The last attempt: answered 503" in state[1]
    assert all(cells(page, f"attempt-{n}")[6] == "—" for n in re.findall(r"attempt-(\d+)", page))
    listed = hook_client.get(f"/admin/campaigns/{slug}/webhooks").text
    assert "Switched off by Chorus" in listed and "answered 503" in listed

    # Switched on again from its page: audited as the API audits it.
    switched = hook_client.post(
        f"{page_url}/enable", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert switched.status_code == 303
    assert switched.headers["location"] == f"{page_url}?done=enabled"
    page = hook_client.get(switched.headers["location"]).text
    assert "The endpoint is switched on" in page and "Switched off by Chorus" not in page
    session.refresh(endpoint)
    assert endpoint.disabled_at is None and endpoint.failing_since is None
    assert actions(session, endpoint.id or 0) == [
        ("webhook.create", organiser.email),
        ("webhook.auto_disable", None),
        ("webhook.enable", organiser.email),
    ]


URL_REFUSALS = [
    ("", "Give the URL to send the events to."),
    ("ftp://example.org/x", "Use a URL beginning with https:// (or http://)."),
    ("https://user:pw@example.org/x", "Put no user name or password in the URL"),
    ("https://example.org/x#part", "Leave out the # and what follows it"),
    ("https://exa mple.org/", "Take out the spaces and invisible characters."),
    ("http://10.0.0.7/hook", "10.0.0.7 is a private, link-local or reserved address."),
    ("http://127.0.0.1:8000/hook", "127.0.0.1 is this server itself (loopback)."),
    ("http://localhost:8000/hook", "localhost is "),  # then the address it has: ::1, 127.0.0.1
    ("https://nonexistent.invalid/hook", "nonexistent.invalid cannot be found."),
    ("https://-bad-.example/hook", "-bad-.example is not a valid host name."),
]


@pytest.mark.parametrize(("url", "message"), URL_REFUSALS)
def test_a_refused_url_is_explained_beside_the_field_and_nothing_is_stored(
    client: TestClient, session: Session, slug: str, organiser: Account, url: str, message: str
) -> None:
    csrf = signed_in(client, organiser.email, organiser.password)
    refused = register(client, slug, csrf, url)
    assert refused.status_code == 422
    error = re.search(r'id="f-url-error">(.*?)</p>', refused.text, re.S)
    assert error and message in html.unescape(error[1])
    assert f'value="{html.escape(url)}"' in refused.text  # what was typed comes back
    assert 'name="event.signature.confirmed" value="1" checked' in refused.text
    assert session.exec(select(WebhookEndpoint)).first() is None
    assert session.exec(select(AuditEntry).where(AuditEntry.action == "webhook.create")).all() == []


def test_other_mistakes_and_other_languages(
    client: TestClient, session: Session, slug: str, organiser: Account
) -> None:
    csrf = signed_in(client, organiser.email, organiser.password)
    base = f"/admin/campaigns/{slug}/webhooks"
    no_events = client.post(
        base, data={"url": "https://8.8.8.8/x", "scope": "full", "csrf_token": csrf}
    )
    assert no_events.status_code == 422
    assert 'href="#f-events">Tick at least one event.' in no_events.text
    assert 'id="f-scope-full" name="scope" value="full" checked' in no_events.text
    forged = register(client, slug, csrf, "https://8.8.8.8/x", scope="everything")
    assert "Choose how much it is told about people." in forged.text
    too_long = register(client, slug, csrf, "https://8.8.8.8/" + "a" * 2000)
    assert "Use at most 2,000 characters." in too_long.text
    assert session.exec(select(WebhookEndpoint)).first() is None

    for locale, private, events in [
        ("ko", "10.0.0.7은(는) 사설, 링크 로컬 또는 예약된 주소입니다.", "이벤트를 하나 이상"),
        ("uk", "10.0.0.7 — приватна, локальна для каналу", "Позначте принаймні одну подію."),
    ]:
        client.post("/admin/language", data={"locale": locale, "next": base, "csrf_token": csrf})
        page = client.get(base).text
        assert f'<html lang="{locale}">' in page
        refused = register(client, slug, csrf, "http://10.0.0.7/hook")
        assert private in html.unescape(refused.text)
        none_ticked = client.post(base, data={"url": "x", "scope": "counts", "csrf_token": csrf})
        assert events in none_ticked.text


def test_switching_off_and_deleting_after_confirming_are_audited_as_in_the_api(
    hook_client: TestClient, session: Session, slug: str, organiser: Account, admin: Account
) -> None:
    csrf = signed_in(hook_client, organiser.email, organiser.password)
    register(hook_client, slug, csrf, "https://8.8.8.8/hooks", scope="counts")
    endpoint = session.exec(select(WebhookEndpoint)).one()
    page_url = f"/admin/campaigns/{slug}/webhooks/{endpoint.id}"
    off = hook_client.post(f"{page_url}/disable", data={"csrf_token": csrf})
    assert off.status_code == 200 and "The endpoint is switched off." in off.text
    assert "Switched off" in off.text and "Switch on" in off.text
    session.refresh(endpoint)
    assert endpoint.disabled_reason == "organiser"

    confirmation = hook_client.get(f"{page_url}/delete")
    assert confirmation.status_code == 200 and "Delete this endpoint?" in confirmation.text
    assert session.exec(select(WebhookEndpoint)).one()  # asking deletes nothing
    deleted = hook_client.post(
        f"{page_url}/delete", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert deleted.headers["location"] == f"/admin/campaigns/{slug}/webhooks?done=deleted"
    assert "The endpoint was deleted." in hook_client.get(deleted.headers["location"]).text
    assert session.exec(select(WebhookEndpoint)).first() is None
    assert hook_client.get(page_url).status_code == 404
    assert actions(session, endpoint.id or 0) == [
        ("webhook.create", organiser.email),
        ("webhook.disable", organiser.email),
        ("webhook.delete", organiser.email),
    ]


def test_roles_csrf_and_signed_out_visitors(
    client: TestClient, session: Session, slug: str, organiser: Account, make_account: Any
) -> None:
    theirs = make_petition(session)
    their_slug = session.exec(select(Campaign.slug).where(Campaign.id == theirs.campaign_id)).one()
    outsider: Account = make_account("organiser", [their_slug])
    admin: Account = make_account("admin")
    csrf = signed_in(client, admin.email, admin.password)  # admins manage every campaign
    assert register(client, slug, csrf, "https://8.8.8.8/hooks").status_code == 200
    endpoint = session.exec(select(WebhookEndpoint)).one()
    base = f"/admin/campaigns/{slug}/webhooks"
    pages = [base, f"{base}/{endpoint.id}", f"{base}/{endpoint.id}/delete"]
    forms = [
        (base, {"url": "https://8.8.4.4/x", "event.letter.sent": "1", "scope": "full"}),
        *((f"{base}/{endpoint.id}/{action}", {}) for action in ("disable", "enable", "delete")),
    ]

    def state() -> Any:
        session.expire_all()
        rows = session.exec(select(WebhookEndpoint)).all()
        audited = session.exec(select(AuditEntry.action)).all()
        return [(e.id, e.url, e.disabled_at) for e in rows], [a for a in audited if "webhook" in a]

    before = state()
    # A POST without this session's CSRF token is refused and changes nothing.
    with TestClient(client.app) as attacker:
        attacker_csrf = signed_in(attacker, admin.email, admin.password)
    for path, data in forms:
        for token in (None, "", "0" * 64, attacker_csrf):
            sent = data if token is None else {**data, "csrf_token": token}
            response = client.post(path, data=sent, follow_redirects=False)
            assert response.status_code == 403, (path, token)
    assert state() == before
    client.post("/admin/logout", data={"csrf_token": csrf})

    # Signed out: to sign in, and no data.
    for path in pages:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and "/admin/login?next=" in response.headers["location"]
    for path, data in forms:
        response = client.post(path, data=data, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/admin/login"

    # Another campaign's organiser: 404 everywhere, also through their own campaign's path.
    csrf = signed_in(client, outsider.email, outsider.password)
    assert "8.8.8.8" not in client.get(f"/admin/campaigns/{their_slug}/webhooks").text
    for path in [*pages, f"/admin/campaigns/{their_slug}/webhooks/{endpoint.id}"]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert "8.8.8.8" not in response.text
    for path, data in forms:
        assert client.post(path, data={**data, "csrf_token": csrf}).status_code == 404, path
    mine = f"/admin/campaigns/{their_slug}/webhooks/{endpoint.id}/disable"
    assert client.post(mine, data={"csrf_token": csrf}).status_code == 404
    assert client.get(f"{base}/0").status_code == 422
    assert state() == before
    client.post("/admin/logout", data={"csrf_token": csrf})

    # The campaign's own organiser sees it; the page never shows a secret.
    signed_in(client, organiser.email, organiser.password)
    page = client.get(f"{base}/{endpoint.id}")
    assert page.status_code == 200 and "whsec_" not in page.text
    assert csrf_of(page.text)


def test_every_refusal_and_text_of_the_pages_is_in_each_language() -> None:
    tree = ast.parse((ROOT / "app/webhooks/addresses.py").read_text("utf-8"))
    reasons: set[str] = {
        str(node.args[1].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "Refused"
        and isinstance(node.args[1], ast.Constant)
    }
    reasons |= {f"{reason}{suffix}" for reason in addresses.WHY for suffix in ("", "_resolved")}
    assert len(reasons) == 15
    english = {key for key in catalog("en") if key.startswith("console.webhooks.")}
    assert {f"console.webhooks.refused.{reason}" for reason in reasons} <= english
    for locale in ("ko", "uk"):
        assert english <= set(catalog(locale)), locale
