"""A supporter's journey in a real browser: sign in Korean, fix mistakes, confirm by e-mail.

Drives Debian's headless Chromium (/usr/bin/chromium) through Playwright; no browser is
downloaded. Locally the test is skipped when Chromium is missing; in CI it fails instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.demo.content import PETITION
from tests.conftest import ROOT, LiveServer, Mailbox, body_text, confirm_link

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SLUG = "no-forced-return"
KO: dict[str, str] = json.loads((ROOT / "app" / "locales" / "ko.json").read_text("utf-8"))
KO_TITLE: str = PETITION["translations"]["ko"]["title"]


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} not found: install Debian's Chromium with `apt-get install chromium`"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (browser tests must not be skipped in CI)", pytrace=False)
    pytest.skip(message)


def _count_text(n: int) -> str:
    return KO["petition.count"].format(count=f"{n:,}")


def _api_count(live_server: LiveServer) -> int:
    response = httpx.get(f"{live_server.url}/api/v1/petitions/{SLUG}", timeout=5)
    assert response.status_code == 200
    return int(response.json()["signature_count"])


def _run_outbox(outbox: Callable[..., int]) -> int:
    # Playwright's sync API keeps an asyncio loop running in this thread, and the worker uses
    # asyncio.run(); the real worker is a separate process anyway, so give it its own thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(outbox).result(timeout=30)


def test_supporter_signs_in_korean_and_confirms_by_email(
    live_server: LiveServer,
    smtp: Mailbox,
    outbox: Callable[..., int],
    demo: Any,
    tmp_path: Path,
) -> None:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    assert demo.slug == SLUG
    petition_url = f"{live_server.url}/petitions/{SLUG}?lang=ko"

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(10_000)

            # 1. The petition page in Korean, nobody has signed yet.
            page.goto(petition_url)
            expect(page.locator("h1")).to_have_text(KO_TITLE)
            count = page.locator("[data-testid=signature-count]")
            expect(count).to_have_text(_count_text(0))

            # 2. A first attempt with a mistyped e-mail and no country.
            form = page.locator("#sign")  # (the letter form below has fields of its own)
            form.get_by_label(KO["form.name"]).fill("김민지")
            form.get_by_label(KO["form.email"]).fill("not-an-email")
            form.get_by_role("button", name=KO["form.submit"]).click()
            expect(page.locator("#e-email")).to_have_text(KO["errors.email_invalid"])
            expect(page.locator("#e-country")).to_have_text(KO["errors.country_invalid"])
            expect(page.locator("#f-email")).to_have_attribute("aria-invalid", "true")
            expect(page.locator("#f-name")).to_have_value("김민지")
            expect(page.locator("#e-name")).to_have_count(0)

            # 3. Fix the fields, by their labels, as a person would, and sign.
            form.get_by_label(KO["form.name"]).fill("김민지")
            form.get_by_label(KO["form.email"]).fill("minji.kim@example.org")
            form.get_by_label(KO["form.country"]).select_option("KR")
            form.get_by_label(KO["form.consent_updates"]).check()
            form.get_by_role("button", name=KO["form.submit"]).click()
            page.wait_for_url(f"**/petitions/{SLUG}/thanks*")
            assert f"/petitions/{SLUG}/thanks" in page.url
            expect(page.locator("h1")).to_have_text(KO["thanks.title"])

            # 4. The confirmation e-mail, in Korean; opening its link changes nothing yet.
            assert _run_outbox(outbox) == 1
            [message] = smtp.wait_for(1)
            assert message["To"].addresses[0].addr_spec == "minji.kim@example.org"
            assert message["Subject"] == KO["email.confirm.subject"].format(title=KO_TITLE)
            link = confirm_link(message)
            assert link.startswith("http://testserver/signatures/confirm/")
            page.goto(live_server.url + link.removeprefix("http://testserver"))
            confirm_button = page.get_by_role("button", name=KO["confirm.button"])
            expect(confirm_button).to_be_visible()
            assert _api_count(live_server) == 0

            # 5. Confirming counts the signature, once.
            confirm_button.click()
            expect(page.locator("h1")).to_have_text(KO["confirmed.title"])
            expect(page.locator("[data-testid=signature-count]")).to_have_text(_count_text(1))
            assert _api_count(live_server) == 1

            page.goto(petition_url)
            expect(page.locator("[data-testid=signature-count]")).to_have_text(_count_text(1))

            # 6. A picture of the page, for a person to look at.
            screenshot = tmp_path / "petition.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 0
        finally:
            browser.close()


UK: dict[str, str] = {
    **json.loads((ROOT / "app" / "locales" / "uk.json").read_text("utf-8")),
    **json.loads((ROOT / "app" / "locales" / "letters.uk.json").read_text("utf-8")),
}


def test_supporter_writes_to_an_official_in_ukrainian_and_confirms_by_email(
    live_server: LiveServer,
    smtp: Mailbox,
    outbox: Callable[..., int],
    demo: Any,
) -> None:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(10_000)
            page.goto(f"{live_server.url}/petitions/{SLUG}?lang=uk")
            letter = page.locator("#write")
            expect(letter.get_by_role("heading")).to_have_text(UK["letters.heading"])
            # Every official is ticked to start with; this supporter writes to one.
            for box in letter.get_by_role("checkbox").all():
                box.uncheck()
            # Officials are named in Ukrainian on the Ukrainian page.
            letter.get_by_label("Міністр об’єднання Республіки Корея").check()
            letter.get_by_label(UK["form.name"]).fill("Олена Коваленко")
            letter.get_by_label(UK["form.email"]).fill("olena.k@example.org")
            letter.get_by_label(UK["letters.city"]).fill("Львів")
            letter.get_by_label(UK["form.country"]).select_option("UA")
            text = letter.get_by_label(UK["letters.message"])
            starting = text.input_value()  # the campaign's text, to put in one's own words
            assert starting.startswith("Пишу щодо двох")
            text.fill("Мій дід теж був військовополоненим. " + starting)
            letter.get_by_role("button", name=UK["letters.submit"]).click()
            page.wait_for_url(f"**/petitions/{SLUG}/letter-sent*")
            expect(page.locator("h1")).to_have_text(UK["letters.thanks.title"])

            assert _run_outbox(outbox) == 1
            [message] = smtp.wait_for(1)
            link = next(
                line.strip()
                for line in body_text(message).splitlines()
                if "/letters/confirm/" in line
            )
            page.goto(live_server.url + link.removeprefix("http://testserver"))
            page.get_by_role("button", name=UK["letters.confirm.button"]).click()
            expect(page.locator("h1")).to_have_text(UK["letters.confirmed.title"])
            assert _run_outbox(outbox) == 1
            [sent] = smtp.to("unification@korea.example")
            assert sent["Reply-To"].addresses[0].addr_spec == "olena.k@example.org"
            body = body_text(sent)
            assert body.startswith("Шановний(а) Міністр об’єднання Республіки Корея,")
            assert "Мій дід теж був військовополоненим." in body
        finally:
            browser.close()


@pytest.mark.parametrize("locale", ["en", "ko", "uk"])
def test_the_petition_page_fits_a_390_pixel_phone_in_each_language(
    live_server: LiveServer, demo: Any, locale: str
) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(f"{live_server.url}/petitions/{SLUG}?lang={locale}")
            # No sideways scrolling: the Ukrainian headline's long words used to push the page
            # wider than the phone.
            widths = page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            assert widths[0] <= widths[1], widths
            h1 = page.locator("h1")
            h1_box = h1.bounding_box()
            assert h1_box is not None and h1_box["x"] + h1_box["width"] <= widths[1]
            style = h1.evaluate(
                "e => { const s = getComputedStyle(e); "
                "return {wordBreak: s.wordBreak, wrap: s.overflowWrap, lang: e.lang || "
                "document.documentElement.lang} }"
            )
            if locale == "ko":
                # Korean breaks between words (eojeol), never inside one.
                assert style["wordBreak"] == "keep-all", style
            assert style["wrap"] in ("anywhere", "break-word"), style
            # The letter box is a field like the others: as wide, in the page's font, not a
            # tiny monospace box.
            field = page.locator("#l-name")
            textarea = page.locator("#l-message")
            assert textarea.evaluate("e => getComputedStyle(e).fontFamily") == field.evaluate(
                "e => getComputedStyle(e).fontFamily"
            )
            field_box, text_box = field.bounding_box(), textarea.bounding_box()
            assert field_box is not None and text_box is not None
            assert abs(text_box["width"] - field_box["width"]) < 1
            assert text_box["height"] >= 150
        finally:
            browser.close()
