"""The console in a real browser: an organiser made through the users API signs in at 390 px,
works on a petition, switches the console to Korean, and signs out; someone from another
campaign gets 404; every page passes axe (no serious or critical violation), has no horizontal
scroll at 390 px, and works under a strict Content-Security-Policy (default-src 'self').

Drives Debian's headless Chromium (/usr/bin/chromium) through Playwright, as tests/test_browser.py.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from sqlalchemy import Engine
from sqlmodel import Session, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.campaigns.models import Campaign
from app.core.config import Settings
from app.donations.models import DonationStatus
from app.email.devmailbox import free_port
from app.main import create_app
from app.petitions.models import Petition, PetitionStatus
from app.signatures.models import SignatureStatus
from app.updates.models import PetitionUpdate
from tests.conftest import ROOT, Account, LiveServer
from tests.console.test_donations import gift
from tests.factories import make_petition
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, _require_chromium
from tests.updates.test_updates import add_signers

pytestmark = pytest.mark.browser

EN: dict[str, str] = json.loads((ROOT / "app/locales/console.en.json").read_text("utf-8"))
KO: dict[str, str] = json.loads((ROOT / "app/locales/console.ko.json").read_text("utf-8"))
CSP = "default-src 'self'"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


class StrictCsp:
    """Every response with the strict Content-Security-Policy the site is getting."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_csp(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"content-security-policy", CSP.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_csp)


@pytest.fixture(scope="module")
def strict_server(settings: Settings, engine: Engine) -> Iterator[LiveServer]:
    """A live server (as tests/conftest.py's) whose pages carry a strict CSP."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    live_settings = settings.model_copy(update={"PUBLIC_BASE_URL": url})
    config = uvicorn.Config(
        StrictCsp(create_app(live_settings)), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "live server did not start"
    yield LiveServer(url=url, settings=live_settings)
    server.should_exit = True
    thread.join(timeout=10)


def new_page(browser: Any, viewport: dict[str, int]) -> tuple[Any, list[str]]:
    """A page, and the list where the browser's complaints about the CSP (and any script
    error) are collected."""
    page = browser.new_context(viewport=viewport).new_page()
    page.set_default_timeout(10_000)
    complaints: list[str] = []
    # (A 4xx page is logged as a failed load too: that one is expected, and not collected.)
    page.on(
        "console",
        lambda m: complaints.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("pageerror", lambda e: complaints.append(str(e)))
    return page, complaints


def check(page: Any, complaints: list[str], what: str) -> None:
    """Accessible (axe: no serious or critical violation), no horizontal scroll, no CSP error."""
    results = Axe().run(page)
    serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{what}: {results.generate_report()}"
    width = page.viewport_size["width"]
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{what}: {scroll} px wide in a {width} px window"
    assert complaints == [], f"{what}: {complaints}"


def make_organiser(server: LiveServer, admin: Account, campaign: str, n: int = 1) -> Account:
    """An organiser account, made as an admin would: through the users API."""
    email, password = f"organiser.{n}@example.org", f"a long enough password {n}"
    response = httpx.post(
        f"{server.url}/api/v1/admin/users",
        json={"email": email, "password": password, "role": "organiser", "campaigns": [campaign]},
        headers=admin.headers,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return Account(email=email, password=password, headers={})


def campaign_slug(session: Session, petition: Petition) -> str:
    return session.exec(select(Campaign.slug).where(Campaign.id == petition.campaign_id)).one()


def test_an_organiser_works_on_a_petition_in_the_console_at_390_px(
    strict_server: LiveServer, session: Session, admin: Account, browser: Any
) -> None:
    from playwright.sync_api import expect

    petition = make_petition(session, status=PetitionStatus.draft, goal=100)
    slug = campaign_slug(session, petition)
    organiser = make_organiser(strict_server, admin, slug)
    title = petition.text("en")["title"]
    page, complaints = new_page(browser, PHONE)

    # Signed out: the console sends us to sign in.
    page.goto(f"{strict_server.url}/admin/")
    page.wait_for_url("**/admin/login")
    expect(page.locator("h1")).to_have_text(EN["console.login.title"])
    check(page, complaints, "sign-in")

    page.get_by_label(EN["console.login.email"]).fill(organiser.email)
    page.get_by_label(EN["console.login.password"]).fill("not my password")
    page.get_by_role("button", name=EN["console.login.submit"]).click()
    expect(page.get_by_role("alert")).to_contain_text(EN["console.login.failed"])
    check(page, complaints, "sign-in, refused")

    page.get_by_label(EN["console.login.password"]).fill(organiser.password)
    page.get_by_role("button", name=EN["console.login.submit"]).click()
    page.wait_for_url(f"{strict_server.url}/admin/")
    expect(page.locator("h1")).to_have_text(EN["console.dashboard.title"])
    nav = page.get_by_role("navigation", name=EN["console.nav.label"])
    expect(nav.get_by_role("link", name=EN["console.nav.dashboard"])).to_have_attribute(
        "aria-current", "page"
    )
    card = page.locator(f"[data-testid=petition-{petition.slug}]")
    expect(card.get_by_role("link", name=title)).to_be_visible()
    expect(card.locator("[data-testid=confirmed]")).to_have_text("0")
    check(page, complaints, "dashboard")

    # The petition: open it, after confirming.
    card.get_by_role("link", name=title).click()
    expect(page.locator("h1")).to_have_text(title)
    breadcrumbs = page.get_by_role("navigation", name=EN["console.nav.breadcrumbs"])
    expect(breadcrumbs.locator("[aria-current=page]")).to_have_text(title)
    check(page, complaints, "petition")
    page.get_by_role("link", name=EN["console.action.open"]).click()
    expect(page.locator("h1")).to_have_text(EN["console.confirm.open.title"])
    check(page, complaints, "confirmation")
    page.get_by_role("button", name=EN["console.confirm.open.button"]).click()
    expect(page.get_by_role("status")).to_have_text(EN["console.done.open"])
    expect(page.locator(".meta .status").first).to_have_text(EN["console.status.open"])
    assert httpx.get(f"{strict_server.url}/api/v1/petitions/{petition.slug}").status_code == 200

    # Its texts, side by side: a Korean version begun, refused, then finished.
    page.get_by_role("link", name=EN["console.petition.edit"]).click()
    expect(page.locator("h1")).to_have_text(EN["console.edit.title"])
    check(page, complaints, "edit")
    korean = page.locator("fieldset[lang=ko]")
    korean.get_by_label(EN["console.field.title"]).fill("강제 송환 반대 청원")
    page.get_by_role("button", name=EN["console.form.save"]).click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.locator("#f-translations-ko-summary-error")).to_have_text(
        EN["console.errors.string_too_short"]
    )
    expect(korean.get_by_label(EN["console.field.title"])).to_have_value("강제 송환 반대 청원")
    check(page, complaints, "edit, refused")
    korean.get_by_label(EN["console.field.summary"]).fill("두 병사를 보호하세요.")
    korean.get_by_label(EN["console.field.body"]).fill("첫 문단.\n\n둘째 문단.")
    page.get_by_role("button", name=EN["console.form.save"]).click()
    expect(page.get_by_role("status")).to_have_text(EN["console.done.saved"])
    stored = session.exec(select(Petition).where(Petition.id == petition.id)).one()
    assert stored.translations["ko"]["body"] == "첫 문단.\n\n둘째 문단."

    # The console in Korean, from here on and wherever this organiser signs in.
    page.get_by_role("button", name="한국어").click()
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    expect(page.locator("h1")).to_have_text("강제 송환 반대 청원")
    expect(page.get_by_role("link", name=KO["console.action.pause"])).to_be_visible()
    check(page, complaints, "petition, in Korean")

    # A new petition in the same campaign.
    page.get_by_role("link", name=KO["console.nav.dashboard"]).first.click()
    page.get_by_role("link", name=KO["console.dashboard.new_petition"]).click()
    expect(page.locator("h1")).to_have_text(KO["console.new_petition.title"])
    check(page, complaints, "new petition")
    page.get_by_label(KO["console.field.slug"]).fill("Bad Slug")
    page.get_by_role("button", name=KO["console.new_petition.submit"]).click()
    expect(page.locator("#f-slug-error")).to_have_text(KO["console.errors.slug_invalid"])
    check(page, complaints, "new petition, refused")

    page.get_by_role("button", name=KO["console.sign_out"]).click()
    page.wait_for_url("**/admin/login")
    page.goto(f"{strict_server.url}/admin/petitions/{petition.slug}")
    page.wait_for_url("**/admin/login?next=*")


def test_an_organiser_of_another_campaign_gets_404(
    strict_server: LiveServer, session: Session, admin: Account, browser: Any
) -> None:
    from playwright.sync_api import expect

    ours = make_petition(session, status=PetitionStatus.open)
    theirs = make_petition(session, status=PetitionStatus.open)
    outsider = make_organiser(strict_server, admin, campaign_slug(session, theirs), n=2)
    page, complaints = new_page(browser, PHONE)
    page.goto(f"{strict_server.url}/admin/login")
    page.get_by_label(EN["console.login.email"]).fill(outsider.email)
    page.get_by_label(EN["console.login.password"]).fill(outsider.password)
    page.get_by_role("button", name=EN["console.login.submit"]).click()
    page.wait_for_url(f"{strict_server.url}/admin/")
    expect(page.get_by_text(ours.text("en")["title"])).to_have_count(0)
    for path in (
        f"/admin/petitions/{ours.slug}",
        f"/admin/petitions/{ours.slug}/edit",
        f"/admin/petitions/{ours.slug}/lifecycle/close",
        f"/admin/campaigns/{campaign_slug(session, ours)}/petitions/new",
    ):
        response = page.goto(strict_server.url + path)
        assert response is not None and response.status == 404, path
        expect(page.locator("h1")).to_have_text(EN["console.error.not_found"])
        expect(page.get_by_text(ours.text("en")["title"])).to_have_count(0)
    check(page, complaints, "not found")


def test_an_admin_creates_a_campaign_in_the_browser(
    strict_server: LiveServer, session: Session, admin: Account, browser: Any
) -> None:
    from playwright.sync_api import expect

    page, complaints = new_page(browser, {"width": 1280, "height": 900})
    page.goto(f"{strict_server.url}/admin/login")
    page.get_by_label(EN["console.login.email"]).fill(admin.email)
    page.get_by_label(EN["console.login.password"]).fill(admin.password)
    page.get_by_role("button", name=EN["console.login.submit"]).click()
    page.get_by_role("link", name=EN["console.nav.new_campaign"]).click()
    expect(page.locator("h1")).to_have_text(EN["console.new_campaign.title"])
    check(page, complaints, "new campaign")
    page.get_by_label(EN["console.field.slug"]).fill("kursk-soldiers")
    english = page.locator("fieldset[lang=en]")
    english.get_by_label(EN["console.field.name"]).fill("No forced return")
    page.get_by_label("EUR").check()
    page.get_by_role("button", name=EN["console.new_campaign.submit"]).click()
    expect(page.get_by_role("status")).to_have_text(EN["console.done.campaign-created"])
    expect(page.locator("h1")).to_have_text(EN["console.new_petition.title"])
    page.set_viewport_size(PHONE)
    check(page, complaints, "new petition of a new campaign, 390 px")
    campaign = session.exec(select(Campaign).where(Campaign.slug == "kursk-soldiers")).one()
    assert campaign.currencies == ["EUR"]


def sign_in_as(page: Any, server: LiveServer, account: Account) -> None:
    page.goto(f"{server.url}/admin/login")
    page.get_by_label(EN["console.login.email"]).fill(account.email)
    page.get_by_label(EN["console.login.password"]).fill(account.password)
    page.get_by_role("button", name=EN["console.login.submit"]).click()
    page.wait_for_url(f"{server.url}/admin/")


def test_an_organiser_manages_officials_and_addresses_a_petition_at_390_px(
    strict_server: LiveServer, session: Session, admin: Account, browser: Any
) -> None:
    from playwright.sync_api import expect

    petition = make_petition(session, status=PetitionStatus.open, goal=100)
    slug = campaign_slug(session, petition)
    organiser = make_organiser(strict_server, admin, slug, n=3)
    page, complaints = new_page(browser, PHONE)
    sign_in_as(page, strict_server, organiser)

    # The campaign's officials, from the dashboard.
    page.get_by_role("link", name=EN["console.officials.title"]).first.click()
    expect(page.locator("h1")).to_have_text(EN["console.officials.title"])
    expect(page.locator(".card h3")).to_have_text(["Minister of Tests"])
    check(page, complaints, "officials")

    # A new group, then a new official in it: refused without an address, then added.
    page.get_by_role("link", name=EN["console.officials.add_group"]).click()
    expect(page.locator("h1")).to_have_text(EN["console.group.new_title"])
    check(page, complaints, "new group")
    page.get_by_label(EN["console.field.key"]).fill("ukraine")
    page.get_by_label("Name in English").fill("Ukraine")
    page.get_by_role("button", name=EN["console.form.save"]).click()
    expect(page.get_by_role("status")).to_have_text(EN["console.done.official-group-saved"])

    page.get_by_role("link", name=EN["console.officials.add"]).click()
    expect(page.locator("h1")).to_have_text(EN["console.official.new_title"])
    check(page, complaints, "new official")
    page.get_by_label(EN["console.field.official_name"]).fill("President of Ukraine")
    page.get_by_label(EN["console.field.key"]).fill("ua-president")
    page.get_by_label(EN["console.field.country"]).select_option("UA")
    page.get_by_label(EN["console.field.language"]).fill("uk")
    page.get_by_label(EN["console.field.group"]).select_option("ukraine")
    page.locator("fieldset[lang=uk]").get_by_label(EN["console.field.name"]).fill(
        "Президент України"
    )
    page.get_by_role("button", name=EN["console.official.submit_new"]).click()
    expect(page.locator("#f-email-error")).to_have_text(EN["console.errors.email_missing"])
    expect(page.locator("fieldset[lang=uk]").get_by_label(EN["console.field.name"])).to_have_value(
        "Президент України"
    )
    check(page, complaints, "new official, refused")
    page.get_by_label(EN["console.field.official_email"]).fill("president@example.org")
    page.get_by_role("button", name=EN["console.official.submit_new"]).click()
    expect(page.get_by_role("status")).to_have_text(EN["console.done.official-created"])
    expect(page.locator("[data-testid=official-ua-president] h3")).to_have_text(
        "President of Ukraine"
    )
    page.get_by_role("link", name=f"{EN['console.official.edit']} — President of Ukraine").click()
    expect(page.locator("h1")).to_have_text(EN["console.official.edit_title"])
    check(page, complaints, "edit official")
    page.go_back()
    page.get_by_role("link", name=f"{EN['console.official.retire']} — Minister of Tests").click()
    expect(page.locator("h1")).to_have_text(EN["console.official.retire_title"])
    check(page, complaints, "retire official")

    # The petition: addressed to the new official first, then the factory's.
    page.goto(f"{strict_server.url}/admin/petitions/{petition.slug}")
    page.get_by_role("link", name=EN["console.petition.choose_officials"]).click()
    expect(page.locator("h1")).to_have_text(EN["console.choose.title"])
    check(page, complaints, "choose officials")
    page.get_by_role("checkbox", name=re.compile("^President of Ukraine")).check()
    page.get_by_label(f"{EN['console.choose.order']} — President of Ukraine").fill("1")
    page.get_by_label(f"{EN['console.choose.order']} — Minister of Tests").fill("2")
    page.get_by_role("button", name=EN["console.form.save"]).click()
    expect(page.get_by_role("status")).to_have_text(EN["console.done.officials"])
    expect(page.locator("ol.targets li strong")).to_have_text(
        ["President of Ukraine", "Minister of Tests"]
    )

    # In Ukrainian: the official's Ukrainian name, and the page still fits 390 px.
    page.get_by_role("button", name="Українська").click()
    expect(page.locator("ol.targets li strong").first).to_have_text("Президент України")
    page.goto(f"{strict_server.url}/admin/campaigns/{slug}/officials")
    expect(page.locator("[data-testid=official-ua-president] h3")).to_have_text("Президент України")
    check(page, complaints, "officials, in Ukrainian")


def test_an_organiser_sends_an_update_and_reads_the_donations_at_390_px(
    strict_server: LiveServer, session: Session, admin: Account, browser: Any
) -> None:
    from playwright.sync_api import expect

    petition = make_petition(session, status=PetitionStatus.open, locales=("en", "ko"))
    add_signers(session, petition, 3)
    organiser = make_organiser(strict_server, admin, campaign_slug(session, petition), n=4)
    page, complaints = new_page(browser, PHONE)
    sign_in_as(page, strict_server, organiser)
    page.goto(f"{strict_server.url}/admin/petitions/{petition.slug}")
    page.get_by_role("link", name=EN["console.petition.write_update"]).click()
    expect(page.locator("h1")).to_have_text(EN["console.updates.title"])
    expect(page.get_by_test_id("audience")).to_contain_text("3 people")
    check(page, complaints, "updates")

    korean = page.locator("fieldset[lang=ko]")
    korean.get_by_label(EN["console.update_field.subject"]).fill("청원을 전달했습니다")
    korean.get_by_label(EN["console.update_field.body"]).fill("감사합니다.")
    page.get_by_role("button", name=EN["console.updates.review"]).click()
    expect(page.locator("#f-translations-en .error")).to_have_text(
        EN["console.errors.default_locale_missing"]
    )
    check(page, complaints, "updates, refused")

    english = page.locator("fieldset[lang=en]")
    english.get_by_label(EN["console.update_field.subject"]).fill("We delivered it")
    english.get_by_label(EN["console.update_field.body"]).fill("First.\n\nSecond paragraph.")
    page.get_by_role("button", name=EN["console.updates.review"]).click()
    expect(page.locator("h1")).to_have_text(EN["console.updates.review_title"])
    check(page, complaints, "update review")
    page.get_by_role("button", name="Send to 3 people").click()
    expect(page.get_by_role("status")).to_contain_text("queued for 3 people")
    expect(page.locator("tbody th")).to_have_text(["We delivered it"])
    check(page, complaints, "updates, sent")
    [body] = session.exec(select(PetitionUpdate.translations)).all()
    assert body["en"]["body"] == "First.\n\nSecond paragraph."

    # The campaign's donations, from the dashboard.
    gift(session, petition.campaign_id, "d-1", 2550, "EUR", DonationStatus.paid)
    page.get_by_role("link", name=EN["console.nav.dashboard"]).first.click()
    page.get_by_role("link", name=EN["console.donations.title"]).first.click()
    expect(page.locator("h1")).to_have_text(EN["console.donations.title"])
    expect(page.get_by_test_id("total-EUR")).to_contain_text("€25.50")
    check(page, complaints, "donations")


def test_an_admin_manages_accounts_tokens_rules_and_reads_the_audit_log_at_390_px(
    strict_server: LiveServer, session: Session, admin: Account, browser: Any
) -> None:
    from playwright.sync_api import expect

    petition = make_petition(session, status=PetitionStatus.open)
    slug = campaign_slug(session, petition)
    page, complaints = new_page(browser, PHONE)
    sign_in_as(page, strict_server, admin)
    nav = page.get_by_role("navigation", name=EN["console.nav.label"])

    # Accounts: a new organiser, refused with a short password, then created.
    nav.get_by_role("link", name=EN["console.nav.accounts"]).click()
    expect(page.locator("h1")).to_have_text(EN["console.accounts.title"])
    expect(nav.get_by_role("link", name=EN["console.nav.accounts"])).to_have_attribute(
        "aria-current", "page"
    )
    check(page, complaints, "accounts")
    page.get_by_role("link", name=EN["console.accounts.new"]).click()
    check(page, complaints, "new account")
    page.get_by_label(EN["console.field.email"]).fill("mykola@example.org")
    page.get_by_label(EN["console.field.password"]).fill("too short")
    page.locator(f"#f-campaign-{slug}").check()
    page.get_by_role("button", name=EN["console.accounts.create"]).click()
    expect(page.locator("#f-password-error")).to_have_text("Use at least 12 characters.")
    expect(page.locator(f"#f-campaign-{slug}")).to_be_checked()
    check(page, complaints, "new account, refused")
    page.get_by_label(EN["console.field.password"]).fill("a long enough password")
    page.get_by_role("button", name=EN["console.accounts.create"]).click()
    expect(page.get_by_role("status")).to_have_text(EN["console.done.account-created"])
    page.get_by_role("link", name=f"{EN['console.official.edit']} — mykola@example.org").click()
    expect(page.locator("h1")).to_have_text(EN["console.accounts.edit_title"])
    check(page, complaints, "edit account")

    # API tokens: issued and shown once.
    nav.get_by_role("link", name=EN["console.nav.tokens"]).click()
    check(page, complaints, "tokens")
    page.get_by_label(EN["console.tokens.name"]).fill("nightly export")
    page.get_by_role("button", name=EN["console.tokens.submit"]).click()
    token = page.get_by_test_id("issued-token").inner_text()
    assert token.startswith("chorus_")
    check(page, complaints, "token issued")
    me = httpx.get(
        f"{strict_server.url}/api/v1/admin/me",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert me.status_code == 200

    # Abuse rules: one refused, one added.
    nav.get_by_role("link", name=EN["console.nav.abuse_rules"]).click()
    check(page, complaints, "abuse rules")
    page.get_by_label(EN["console.rules.kind"]).select_option("ip")
    page.get_by_label(EN["console.rules.value"]).fill("not an address")
    page.get_by_role("button", name=EN["console.rules.submit"]).click()
    expect(page.locator("#f-value-error")).to_have_text(EN["console.errors.ip_invalid"])
    check(page, complaints, "abuse rules, refused")
    page.get_by_label(EN["console.rules.kind"]).select_option("domain")
    page.get_by_label(EN["console.rules.value"]).fill("spam.example")
    page.get_by_role("button", name=EN["console.rules.submit"]).click()
    expect(page.get_by_role("status")).to_have_text(EN["console.done.rule-created"])
    expect(page.locator("tbody th")).to_have_text(["spam.example"])

    # The audit log: everything above, filtered to accounts.
    nav.get_by_role("link", name=EN["console.nav.audit"]).click()
    check(page, complaints, "audit log")
    page.get_by_label(EN["console.audit.action"]).fill("user.")
    page.get_by_role("button", name=EN["console.audit.filter"]).click()
    expect(page.locator("tbody th code")).to_have_text(["user.create"])
    check(page, complaints, "audit log, filtered")


def test_an_organiser_counts_downloads_and_checks_trending_sources_at_390_px(
    strict_server: LiveServer, session: Session, admin: Account, browser: Any
) -> None:
    from playwright.sync_api import expect

    petition = make_petition(session, status=PetitionStatus.open)
    add_signers(session, petition, 2, prefix="ua")
    add_signers(
        session,
        petition,
        2,
        prefix="bot",
        country="KR",
        ip_hash="cafe0123",
        email_domain="farm.example",
        status=SignatureStatus.suspect,
        confirmed_at=None,
    )
    organiser = make_organiser(strict_server, admin, campaign_slug(session, petition), n=6)
    page, complaints = new_page(browser, PHONE)
    sign_in_as(page, strict_server, organiser)
    page.goto(f"{strict_server.url}/admin/petitions/{petition.slug}")
    page.get_by_role("link", name=EN["console.petition.signatures"]).click()
    expect(page.locator("h1")).to_have_text(EN["console.signatures.title"])
    expect(page.get_by_test_id("total")).to_have_text("4 signatures match.")
    check(page, complaints, "signatures")

    page.get_by_label(EN["console.signatures.country"]).fill("Narnia")
    page.get_by_role("button", name=EN["console.signatures.count"]).click()
    expect(page.locator("#f-country-error")).to_have_text(EN["console.errors.country_invalid"])
    check(page, complaints, "signatures, refused filter")

    page.get_by_label(EN["console.signatures.country"]).fill("UA")
    page.get_by_label(EN["console.signatures.status"]).select_option("confirmed")
    page.get_by_role("button", name=EN["console.signatures.count"]).click()
    expect(page.get_by_test_id("total")).to_have_text("2 signatures match.")
    page.get_by_label(EN["console.signatures.bom"]).check()
    with page.expect_download() as info:
        page.get_by_role("button", name=EN["console.signatures.download"]).click()
    download = info.value
    content = open(download.path(), "rb").read()
    assert content.startswith(b"\xef\xbb\xbf")
    assert b"ua0@example.org" in content and b"bot0@example.org" not in content
    assert download.suggested_filename.endswith(".csv")

    page.get_by_role("button", name="Release the held signatures from cafe0123").click()
    expect(page.get_by_test_id("done")).to_have_text("2 held signatures released.")
    check(page, complaints, "signatures, released")


def test_an_organiser_fixes_previews_and_saves_a_letter_template_at_390_px(
    strict_server: LiveServer, session: Session, admin: Account, browser: Any
) -> None:
    from playwright.sync_api import expect

    petition = make_petition(session, status=PetitionStatus.open)
    organiser = make_organiser(strict_server, admin, campaign_slug(session, petition), n=7)
    page, complaints = new_page(browser, PHONE)
    sign_in_as(page, strict_server, organiser)
    page.get_by_role("link", name=EN["console.templates.title"]).first.click()
    expect(page.locator("h1")).to_have_text(EN["console.templates.title"])
    check(page, complaints, "letter templates")
    page.get_by_test_id("template-delivery-en").get_by_role("link").click()
    expect(page.get_by_label(EN["console.templates.body"])).not_to_be_empty()
    check(page, complaints, "delivery letter editor")

    body = page.get_by_label(EN["console.templates.body"])
    body.fill("Dear {{ target.name }},\n\n{{ petition.nope }}\nYours")
    page.get_by_role("button", name=EN["console.templates.save"], exact=True).click()
    expect(page.get_by_test_id("problem-line-3")).to_contain_text("nope")
    check(page, complaints, "delivery letter editor, refused")

    body.fill("Dear {{ target.name }},\n\n{{ petition.confirmed_count }} people ask.\nYours")
    page.get_by_label(EN["console.templates.official"]).select_option(label="Minister of Tests")
    page.get_by_role("button", name=EN["console.templates.preview"]).click()
    expect(page.get_by_test_id("preview-text")).to_contain_text("Dear Minister of Tests,")
    check(page, complaints, "delivery letter preview")
    page.get_by_role("button", name=EN["console.templates.save"], exact=True).click()
    expect(page.get_by_test_id("saved")).to_have_text(EN["console.templates.saved"])

    # Deleting the saved template goes back to the built-in one, after a page that asks.
    page.get_by_test_id("delete").click()
    expect(page.locator("h1")).to_have_text(EN["console.templates.delete_title"])
    check(page, complaints, "letter template delete confirmation")
    page.get_by_role("button", name=EN["console.templates.delete_button"]).click()
    expect(page.get_by_test_id("deleted")).to_have_text(EN["console.templates.deleted"])
    check(page, complaints, "delivery letter editor, template deleted")
