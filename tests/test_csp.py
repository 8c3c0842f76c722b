"""Content-Security-Policy on every page, and /docs and /redoc served from this server.

The browser tests drive Debian's Chromium and let it reach nothing but the live server (a
request to any other host is answered by the test itself and recorded).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import LiveServer
from tests.fake_stripe import FakeStripe
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, SLUG, _require_chromium

DONATE = "/campaigns/protect-captured-north-korean-soldiers/donate"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle=", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
LOCAL_ASSET = re.compile(r'(?:src|href)="([^"]+)"')


def directives(header: str) -> dict[str, str]:
    parsed = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition(" ")
        parsed[name] = value
    return parsed


def test_every_page_has_a_strict_policy_and_no_inline_code(client: TestClient, demo: Any) -> None:
    pages = [
        "/",
        f"/petitions/{SLUG}?lang=ko",
        DONATE,
        "/signatures/confirm/not-a-token",
        "/signatures/manage/not-a-token",
        "/unsubscribe/not-a-token",
        "/no-such-page",
    ]
    for path in pages:
        response = client.get(path, headers={"Accept": "text/html"})
        assert response.headers["content-type"].startswith("text/html"), path
        policy = directives(response.headers["content-security-policy"])
        assert policy["default-src"] == "'self'"
        assert policy["script-src"] == "'self'"
        assert policy["style-src"] == "'self'"
        assert policy["object-src"] == "'none'"
        assert policy["base-uri"] == "'none'"
        assert policy["frame-ancestors"] == "'none'"
        # Stripe Checkout: the donate form posts here and is redirected there.
        assert policy["form-action"] == "'self' https://checkout.stripe.com"
        html = response.text
        assert not INLINE_SCRIPT.search(html), path
        assert not INLINE_STYLE.search(html), path
        assert not EVENT_HANDLER.search(html), path
    stylesheet = client.get("/static/chorus.css")
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")


def test_every_template_is_free_of_inline_code() -> None:
    for template in (Path(__file__).parents[1] / "templates" / "pages").glob("*.html"):
        text = template.read_text("utf-8")
        assert not INLINE_SCRIPT.search(text), template.name
        assert not INLINE_STYLE.search(text), template.name
        assert not EVENT_HANDLER.search(text), template.name


def test_a_captcha_provider_is_allowed_its_script_and_frame(settings: Settings) -> None:
    turnstile = settings.model_copy(update={"CAPTCHA_PROVIDER": "turnstile"})
    with TestClient(create_app(turnstile)) as client:
        policy = directives(client.get("/no-such-page").headers["content-security-policy"])
    assert policy["script-src"] == "'self' https://challenges.cloudflare.com"
    assert policy["frame-src"] == "https://challenges.cloudflare.com"


def test_an_unexpected_error_page_has_the_policy_and_the_other_headers(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        for accept in ("text/html", "application/json"):
            answer = client.get("/boom", headers={"Accept": accept})
            assert answer.status_code == 500
            assert answer.headers["content-type"].startswith(accept.replace("json", "problem+json"))
            policy = directives(answer.headers["content-security-policy"])
            assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["cache-control"] == "private, no-store"
            # The request log stands outside the error handler: a 500 names its request too.
            assert re.fullmatch(r"[0-9a-f]{16}", answer.headers["x-request-id"])
        assert "a bug" not in answer.text


def test_docs_pages_load_only_local_assets(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200
        policy = directives(page.headers["content-security-policy"])
        assert policy["script-src"] == "'self'"  # no inline script, no CDN
        assert not INLINE_SCRIPT.search(page.text)
        assets = LOCAL_ASSET.findall(page.text)
        assert assets and all(url.startswith("/") and not url.startswith("//") for url in assets)
        for url in assets:
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 500, url
    swagger = client.get("/static/docs/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in swagger.content
    assert b"Redoc" in client.get("/static/docs/redoc.standalone.js").content


def test_docs_can_be_switched_off(settings: Settings) -> None:
    off = settings.model_copy(update={"DOCS_ENABLED": False})
    with TestClient(create_app(off)) as client:
        for path in ("/docs", "/redoc", "/static/docs/swagger-ui-bundle.js"):
            assert client.get(path).status_code == 404, path
        # The schema stays: it is the API's contract (see app/core/docs.py).
        assert client.get("/api/v1/openapi.json").status_code == 200
    assert Settings(_env_file=None, ENVIRONMENT="development").docs_enabled
    production = Settings(
        _env_file=None, ENVIRONMENT="production", SECRET_KEY="s" * 40, MAIL_SERVER="mail"
    )
    assert not production.docs_enabled
    assert production.model_copy(update={"DOCS_ENABLED": True}).docs_enabled


# --- in Chromium --------------------------------------------------------------------------------


@contextmanager
def chromium_page(live_server: LiveServer) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A page that may reach only the live server; yields it with the CSP violations and the
    other hosts it tried to reach."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    violations: list[str] = []
    elsewhere: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.add_init_script(
                "document.addEventListener('securitypolicyviolation', e => console.error("
                "'CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
            )

            def on_console(message: Any) -> None:
                if "Content Security Policy" in message.text or "CSP violation" in message.text:
                    violations.append(message.text)

            def route(route: Any) -> None:
                if route.request.url.startswith(live_server.url):
                    route.continue_()
                    return
                elsewhere.append(route.request.url)
                route.fulfill(status=200, content_type="text/html", body="<h1>Elsewhere</h1>")

            page.on("console", on_console)
            page.route("**/*", route)
            yield page, violations, elsewhere
        finally:
            browser.close()


@pytest.mark.browser
def test_the_petition_page_and_the_donate_redirect_run_without_violations(
    live_server: LiveServer, demo: Any, fake_stripe: FakeStripe
) -> None:
    from playwright.sync_api import expect

    with chromium_page(live_server) as (page, violations, elsewhere):
        page.goto(f"{live_server.url}/petitions/{SLUG}")
        expect(page.locator("progress.progress")).to_be_visible()
        # The stylesheet applies (it is a file now): the page's background is Chorus's.
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(246, 245, 241)"
        honeypot = page.locator("#f-website")
        assert honeypot.bounding_box() is not None
        assert honeypot.bounding_box()["x"] < 0  # out of sight

        # The donate form posts to Chorus, which sends the browser on to Stripe Checkout.
        page.goto(f"{live_server.url}{DONATE}?lang=en&currency=EUR")
        page.get_by_role("button").click()
        page.wait_for_url("https://checkout.stripe.com/**")
        expect(page.locator("h1")).to_have_text("Elsewhere")
        assert violations == []
        assert [url for url in elsewhere if "checkout.stripe.com" not in url] == []


@pytest.mark.browser
def test_the_api_docs_render_offline_without_violations(live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    with chromium_page(live_server) as (page, violations, elsewhere):
        page.goto(f"{live_server.url}/docs")
        operations = page.locator(".opblock")
        expect(operations.first).to_be_visible()
        assert operations.count() > 20
        # Open an operation and try it against the live server, as a reader would.
        listing = page.locator(".opblock-get", has_text="/api/v1/petitions").first
        listing.locator(".opblock-summary").click()
        listing.get_by_role("button", name="Try it out").click()
        listing.get_by_role("button", name="Execute").click()
        live = listing.locator(".live-responses-table tbody .response-col_status")
        expect(live.first).to_have_text("200")
        assert violations == []
        assert elsewhere == []

        page.goto(f"{live_server.url}/redoc")
        expect(page.get_by_text("/api/v1/petitions/{slug}/signatures").first).to_be_attached()
        expect(
            page.locator("[role=search] input, input[placeholder='Search...']").first
        ).to_be_visible()
        # Only the Redocly logo (cdn.redoc.ly) is refused, on purpose: no request leaves.
        assert all("cdn.redoc.ly/redoc/logo-mini.svg" in v for v in violations), violations
        assert elsewhere == []
