"""The webhooks pages in a real browser at 390 px, as tests/console/test_console_browser.py checks
every console page (its fixtures and checks, in a file of its own to keep that one under 600
lines): axe finds no serious or critical violation, nothing scrolls sideways, nothing breaks
the strict Content-Security-Policy — on the list, a refused URL, the secret shown once, the
endpoint's attempts (in English and Korean), switching it off and the delete confirmation."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from app.core.db import utcnow
from app.webhooks import service as webhook_service
from app.webhooks.models import WebhookEndpoint
from app.webhooks.service import Attempt
from tests.conftest import ROOT, Account, LiveServer
from tests.console import test_console_browser as console_browser
from tests.console.test_console_browser import (
    EN,
    PHONE,
    campaign_slug,
    check,
    make_organiser,
    new_page,
    sign_in_as,
)
from tests.factories import make_petition

pytestmark = pytest.mark.browser

# The console's browser fixtures: Debian's Chromium, and a live server with a strict CSP.
browser = console_browser.browser
strict_server = console_browser.strict_server

HOOKS = json.loads((ROOT / "app/locales/webhooks.en.json").read_text("utf-8"))
HOOKS_KO = json.loads((ROOT / "app/locales/webhooks.ko.json").read_text("utf-8"))


def attempts_made(session: Session, endpoint: WebhookEndpoint, settings: Any) -> None:
    """Two attempts logged as the worker logs them: one failed, then one delivered."""
    assert endpoint.id is not None
    now = utcnow()
    tried = [
        Attempt(1, endpoint.id, "msg_1", "signature.confirmed", 1, now, None, "ConnectError", 9),
        Attempt(
            1,
            endpoint.id,
            "msg_1",
            "signature.confirmed",
            2,
            now + timedelta(seconds=30),
            200,
            None,
            41,
        ),
    ]
    webhook_service.record_attempts(session, settings, tried=tried, finished=[1])
    session.commit()


def test_an_organiser_registers_and_manages_a_webhook_at_390_px(
    strict_server: LiveServer, session: Session, admin: Account, browser: Any
) -> None:
    from playwright.sync_api import expect

    petition = make_petition(session)
    organiser = make_organiser(strict_server, admin, campaign_slug(session, petition), n=8)
    page, complaints = new_page(browser, PHONE)
    sign_in_as(page, strict_server, organiser)
    page.get_by_role("link", name=HOOKS["console.webhooks.title"]).first.click()
    expect(page.locator("h1")).to_have_text(HOOKS["console.webhooks.title"])
    check(page, complaints, "webhooks")

    # Refused: this server does not allow loopback addresses.
    page.get_by_label(HOOKS["console.webhooks.url"]).fill("http://127.0.0.1:9/hook")
    page.get_by_label(HOOKS["console.webhooks.event.signature.confirmed"]).check()
    page.get_by_label(HOOKS["console.webhooks.scope.names"]).check()
    page.get_by_role("button", name=HOOKS["console.webhooks.submit"]).click()
    expect(page.locator("#f-url-error")).to_contain_text("this server itself (loopback)")
    expect(page.get_by_label(HOOKS["console.webhooks.scope.names"])).to_be_checked()
    check(page, complaints, "webhooks, refused")

    page.get_by_label(HOOKS["console.webhooks.url"]).fill("https://8.8.8.8/hooks/chorus")
    page.get_by_role("button", name=HOOKS["console.webhooks.submit"]).click()
    expect(page.get_by_test_id("secret")).to_contain_text("whsec_")
    check(page, complaints, "webhook registered, its secret shown")

    endpoint = session.exec(select(WebhookEndpoint)).one()
    attempts_made(session, endpoint, strict_server.settings)
    page.get_by_role("link", name=HOOKS["console.webhooks.open"]).click()
    expect(page.locator("h1")).to_have_text(HOOKS["console.webhooks.endpoint_title"])
    expect(page.locator("tbody tr")).to_have_count(2)
    check(page, complaints, "webhook endpoint")
    page.get_by_role("button", name="한국어").click()
    expect(page.locator("h1")).to_have_text(HOOKS_KO["console.webhooks.endpoint_title"])
    check(page, complaints, "webhook endpoint, in Korean")
    page.get_by_role("button", name="English").click()

    page.get_by_role("button", name=HOOKS["console.webhooks.disable"]).click()
    expect(page.get_by_role("status")).to_have_text(HOOKS["console.done.webhook-disabled"])
    check(page, complaints, "webhook endpoint, switched off")
    page.get_by_role("link", name=HOOKS["console.webhooks.delete"]).click()
    expect(page.locator("h1")).to_have_text(HOOKS["console.webhooks.delete_title"])
    check(page, complaints, "delete webhook")
    page.get_by_role("button", name=HOOKS["console.webhooks.delete_button"]).click()
    expect(page.get_by_role("status")).to_have_text(HOOKS["console.done.webhook-deleted"])
    expect(page.locator("h1")).to_have_text(HOOKS["console.webhooks.title"])
    assert session.exec(select(WebhookEndpoint)).first() is None
    assert EN["console.nav.dashboard"] in page.content()
