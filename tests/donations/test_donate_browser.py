"""A Ukrainian donor in a real browser: "1,000" is refused next to the field, "25,50" goes to
Stripe as 25.50 UAH."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, LiveServer
from tests.fake_stripe import FakeStripe
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, _require_chromium

pytestmark = pytest.mark.browser

CAMPAIGN = "protect-captured-north-korean-soldiers"
UK: dict[str, str] = {
    **json.loads((ROOT / "app" / "locales" / "uk.json").read_text("utf-8")),
    **json.loads((ROOT / "app" / "locales" / "donations.uk.json").read_text("utf-8")),
}


def test_a_ukrainian_donor_types_an_amount_with_a_decimal_comma(
    live_server: LiveServer, demo: Any, fake_stripe: FakeStripe, tmp_path: Path
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
            # Stripe's checkout is not reachable from here: answer for it.
            page.route(
                "https://checkout.stripe.com/**",
                lambda route: route.fulfill(status=200, body="Stripe Checkout"),
            )
            page.goto(f"{live_server.url}/campaigns/{CAMPAIGN}/donate?lang=uk")
            amount = page.get_by_label(UK["donate.custom"].format(currency="UAH"))

            amount.fill("1,000")
            page.get_by_role("button", name=UK["donate.submit"]).click()
            expect(page.locator("#e-amount")).to_have_text(
                UK["donate.errors.amount_ambiguous"].format(amount="1,000", example="25,50")
            )
            expect(page.locator("#f-custom_amount")).to_have_attribute("aria-invalid", "true")
            page.screenshot(path=str(tmp_path / "donate-uk.png"), full_page=True)
            assert fake_stripe.sessions == {}

            page.get_by_label(UK["donate.custom"].format(currency="UAH")).fill("25,50")
            page.get_by_role("button", name=UK["donate.submit"]).click()
            page.wait_for_url("https://checkout.stripe.com/**")
            [checkout] = fake_stripe.sessions.values()
            assert (checkout["amount_total"], checkout["currency"]) == (2550, "uah")
        finally:
            browser.close()
