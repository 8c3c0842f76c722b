"""A petition shared and embedded, in Chromium: preview tags, the share card, the copy button,
the sign form in a frame on an allowed site (and refused on another), signing from the frame.

The other sites are tiny HTTP servers on other ports of 127.0.0.1: other origins, as far as the
browser is concerned. With UPDATE_SCREENSHOTS=1 the test also writes the README's pictures of
the share card and the charts (docs/share-card-ko.png, docs/petition-charts.png).
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from PIL import Image
from sqlmodel import Session

from app.core.config import Settings
from app.core.db import utcnow
from app.core.i18n import translate
from app.email.devmailbox import free_port
from tests.conftest import ROOT, LiveServer, Mailbox, body_text
from tests.sharing.helpers import confirmed_at, png_size, png_texts
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, KO_TITLE, SLUG, _require_chromium
from tests.test_browser import _run_outbox as run_outbox

pytestmark = pytest.mark.browser

CAMPAIGN = "protect-captured-north-korean-soldiers"
# Signatures of the last ten days: (days ago, country, how many).
HISTORY = [
    (9, "KR", 6),
    (8, "UA", 9),
    (7, "KR", 14),
    (6, "PL", 5),
    (5, "UA", 21),
    (4, "DE", 8),
    (3, "KR", 17),
    (2, "US", 9),
    (1, "UA", 26),
    (0, "GB", 7),
]


@contextmanager
def other_site(embed_url: str) -> Iterator[str]:
    """A page of another site that shows the sign form in a frame; yields its origin."""
    page = (
        "<!doctype html><html lang=en><title>A campaign partner</title>"
        "<h1>A campaign partner</h1>"
        f'<iframe id="chorus" title="Sign the petition" src="{embed_url}" '
        'width="480" height="1100"></iframe>'
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def serious_violations(page: Any) -> list[str]:
    """axe's serious and critical accessibility violations on the page."""
    violations = Axe().run(page).response["violations"]
    return [v["id"] for v in violations if v["impact"] in ("serious", "critical")]


def add_history(session: Session, settings: Settings, petition: Any) -> int:
    now = utcnow()
    n = 0
    for days, country, count in HISTORY:
        for i in range(count):
            when = now - timedelta(days=days, minutes=5 + i)
            confirmed_at(session, settings, petition, when, country)
            n += 1
    return n


def test_a_petition_is_shared_and_signed_from_a_frame_on_another_site(
    live_server: LiveServer,
    smtp: Mailbox,
    outbox: Callable[..., int],
    demo: Any,
    session: Session,
    settings: Settings,
    make_account: Any,
) -> None:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    live = live_server.url
    total = add_history(session, settings, demo)
    embed_url = f"{live}/embed/petitions/{SLUG}?lang=en"
    screenshots = ROOT / "docs" if os.environ.get("UPDATE_SCREENSHOTS") else None

    with other_site(embed_url) as allowed, other_site(embed_url) as elsewhere:
        organiser = make_account("organiser", campaigns=[CAMPAIGN])
        listed = httpx.patch(
            f"{live}/api/v1/admin/campaigns/{CAMPAIGN}",
            json={"embed_origins": [allowed]},
            headers=organiser.headers,
            timeout=10,
        )
        assert listed.status_code == 200, listed.text

        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                context = browser.new_context(locale="ko-KR")
                context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live)
                page = context.new_page()
                page.set_default_timeout(15_000)
                console: list[str] = []
                page.on("console", lambda message: console.append(message.text))

                # 1. The petition page, as a link preview reads it.
                page.goto(f"{live}/petitions/{SLUG}?lang=ko")
                og = page.evaluate(
                    "() => Object.fromEntries([...document.querySelectorAll("
                    '\'meta[property^="og:"], meta[name^="twitter:"]\')]'
                    ".map(m => [m.getAttribute('property') || m.name, m.content]))"
                )
                assert og["og:title"] == og["twitter:title"] == KO_TITLE
                assert og["og:url"] == f"{live}/petitions/{SLUG}?lang=ko"
                assert og["og:locale"] == "ko_KR"
                assert og["twitter:card"] == "summary_large_image"
                hreflangs = page.eval_on_selector_all(
                    "link[rel=alternate][hreflang]", "links => links.map(l => l.hreflang)"
                )
                assert sorted(hreflangs) == ["en", "ko", "uk", "x-default"]

                # 2. The share card: a PNG of the title, which the browser decodes.
                image_url = og["og:image"]
                assert image_url == og["twitter:image"]
                assert image_url.startswith(f"{live}/petitions/{SLUG}/card.png?lang=ko&n=")
                card = page.request.get(image_url)
                assert card.ok and card.headers["content-type"] == "image/png"
                assert png_size(card.body()) == (1200, 630)
                assert png_texts(card.body())["Title"] == KO_TITLE
                with Image.open(io.BytesIO(card.body())) as decoded:
                    decoded.load()
                    assert decoded.getextrema() != ((255, 255), (255, 255), (255, 255))
                if screenshots:
                    (screenshots / "share-card-ko.png").write_bytes(card.body())

                # 3. The charts, from the tallies, with their tables.
                charts = page.locator("section.numbers")
                expect(charts.locator("svg[role=img]")).to_have_count(2)
                expect(page.locator("#chart-time-title")).to_have_text(
                    translate("ko", "chart.time.heading")
                )
                assert f"{total}명" in (page.locator("#chart-time-desc").text_content() or "")
                page.locator("#chart-countries summary").click()
                expect(page.locator("#chart-countries tbody tr")).to_have_count(6)
                assert serious_violations(page) == []  # charts, tables and share box included
                if screenshots:
                    page.set_viewport_size({"width": 820, "height": 900})
                    page.locator("#chart-countries summary").click()  # (closed again)
                    charts.screenshot(path=str(screenshots / "petition-charts.png"))

                # 4. The share links work as plain links; the script adds a copy button.
                share = page.locator("section.share")
                x = share.locator("a[data-network=x]")
                assert (x.get_attribute("href") or "").startswith("https://x.com/intent/tweet?")
                assert x.get_attribute("target") == "_blank"
                copy = share.get_by_role("button", name=translate("ko", "share.copy"))
                expect(copy).to_be_visible()
                copy.click()
                expect(share.locator("[data-copy-status]")).to_have_text(
                    translate("ko", "share.copied")
                )
                copied = page.evaluate("navigator.clipboard.readText()")
                assert copied == f"{live}/petitions/{SLUG}?lang=ko"

                # 5. Another site that the campaign does not list cannot show the form.
                console.clear()
                page.goto(elsewhere)
                expect(page.locator("h1")).to_have_text("A campaign partner")
                page.wait_for_timeout(500)
                frame = page.frame(url=lambda url: url.startswith(f"{live}/embed/"))
                refused = [m for m in console if "frame-ancestors" in m]
                assert refused, console
                assert frame is None or frame.locator("#sign").count() == 0

                # 6. The listed site shows it, and a visitor signs there.
                page.goto(allowed)
                form = page.frame_locator("#chorus").locator("#sign")
                expect(form).to_be_visible()
                embed_page = page.frame(url=lambda url: url.startswith(f"{live}/embed/"))
                assert embed_page is not None and serious_violations(embed_page) == []
                form.get_by_label("Your name").fill("Maria Kowalska")
                form.get_by_label("E-mail address").fill("maria.kowalska@example.org")
                form.get_by_label("Country").select_option("PL")
                form.get_by_role("button", name="Sign the petition").click()
                framed = page.frame_locator("#chorus")
                expect(framed.locator("h1")).to_have_text("Check your e-mail")
                assert page.url.startswith(allowed)  # the visitor stayed on the other site
            finally:
                browser.close()

    # 7. The signature waits for its confirmation e-mail, as on the petition page.
    assert run_outbox(outbox) == 1
    [message] = smtp.wait_for(1)
    assert message["To"].addresses[0].addr_spec == "maria.kowalska@example.org"
    assert "/signatures/confirm/" in body_text(message)
