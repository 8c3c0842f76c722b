"""Delivering a petition from the console in a real browser at 390 px: an organiser made through
the users API previews an official's letter, chooses the annex's columns, delivers after
confirming, downloads the annex and the manifest through the browser (the annex's SHA-256 is
the manifest's), marks a printed letter as posted and releases a supporter's letter held for
review. Every page passes axe (no serious or critical violation), has no horizontal scroll at
390 px and works under a strict Content-Security-Policy.

With UPDATE_SCREENSHOTS=1 it also writes the README's screenshot, docs/console-delivery.png.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from app.core.config import Settings
from app.letters import supporters
from app.letters.models import Letter, LetterCreate, LetterDelivery, PetitionDelivery
from app.petitions.models import Petition
from app.targets.models import DeliveryChannel, Target
from tests.conftest import ROOT, Account, LiveServer, Mailbox
from tests.console.test_console_browser import (  # noqa: F401 - (fixtures)
    PHONE,
    browser,
    campaign_slug,
    check,
    make_organiser,
    new_page,
    sign_in_as,
    strict_server,
)
from tests.letters.test_delivery import confirmed_signatures
from tests.test_browser import _run_outbox

pytestmark = pytest.mark.browser

DE: dict[str, str] = json.loads((ROOT / "app/locales/console-delivery.en.json").read_text("utf-8"))
COPY = "Please send them where they ask to go, in safety and without delay. " * 3
NAMES = ["Kim Min-jun", "Park Ji-woo", "Lee Seo-yeon", "Choi Do-hyun", "Jung Ha-eun", "Kang Ji-ho"]


def write_letters(session: Session, settings: Settings, petition: Petition, n: int) -> None:
    """`n` supporters' letters with the same text, each confirmed: past LETTER_DUPLICATE_LIMIT
    of them, the next ones are held for review."""
    for i in range(n):
        data = LetterCreate(
            name=NAMES[i % len(NAMES)],
            email=f"supporter{i}@example.org",
            city="Busan",
            country="KR",
            targets=["kr-unification"],
            message=COPY,
        )
        supporters.submit(session, petition=petition, data=data, locale="en", settings=settings)
        session.commit()
        latest = session.exec(select(Letter.id).order_by(col(Letter.id).desc())).first()
        token = supporters.confirmation_token(settings, letter_id=latest or 0)
        supporters.confirm(session, token=token, settings=settings)
        session.commit()


def test_an_organiser_delivers_and_checks_the_annex_in_the_browser_at_390_px(
    strict_server: LiveServer,  # noqa: F811
    session: Session,
    settings: Settings,
    demo: Petition,
    smtp: Mailbox,
    outbox: Any,
    admin: Account,
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    confirmed_signatures(session, settings, demo)
    postal = session.exec(select(Target).where(Target.key == "eu-hr-vp")).one()
    postal.delivery_channel = DeliveryChannel.postal
    session.add(postal)
    session.commit()
    write_letters(session, settings, demo, settings.LETTER_DUPLICATE_LIMIT + 1)
    organiser = make_organiser(strict_server, admin, campaign_slug(session, demo), n=8)
    page, complaints = new_page(browser, PHONE)
    sign_in_as(page, strict_server, organiser)

    page.goto(f"{strict_server.url}/admin/petitions/{demo.slug}")
    page.get_by_role("link", name=DE["console.petition.delivery"]).click()
    expect(page.locator("h1")).to_have_text(DE["console.delivery.title"])
    expect(page.get_by_test_id("upcoming")).to_contain_text("4 confirmed signatures")
    check(page, complaints, "delivery")

    # The President's letter, in Ukrainian, with the real count.
    page.get_by_role(
        "link", name=f"{DE['console.delivery.preview_link']} — President of Ukraine"
    ).click()
    expect(page.locator("h1")).to_have_text(DE["console.delivery.preview_title"])
    expect(page.get_by_test_id("preview-subject")).to_contain_text("Петиція")
    expect(page.get_by_test_id("preview-text")).to_contain_text("4")
    check(page, complaints, "delivery preview")
    page.get_by_role("link", name=DE["console.delivery.back"]).click()

    # Deliver, with postcodes, after confirming.
    page.get_by_label(DE["console.delivery.column.postcode"]).check()
    page.get_by_role("button", name=DE["console.delivery.continue"]).click()
    expect(page.locator("h1")).to_have_text(DE["console.delivery.confirm_title"])
    expect(page.get_by_test_id("columns")).to_contain_text("Postcode")
    check(page, complaints, "delivery confirmation")
    page.get_by_role("button", name=DE["console.delivery.deliver_now"]).click()
    expect(page.get_by_test_id("done")).to_have_text(
        DE["console.delivery.done.delivered"].format(number=1)
    )
    _run_outbox(outbox)  # (the officials' mail server takes the e-mails before this returns)
    assert len(smtp.to("president@ukraine.example")) == 1
    page.reload()
    delivery = page.get_by_test_id("delivery-1")
    expect(delivery.locator("[data-testid=state]", has_text="Sent")).to_have_count(4)
    expect(delivery.locator("[data-testid=state]", has_text="Queued")).to_have_count(1)
    check(page, complaints, "delivered")

    # The annex and the manifest, downloaded through the browser.
    with page.expect_download() as annex_info:
        delivery.get_by_role(
            "link", name=re.compile("^" + re.escape(DE["console.delivery.download_annex"]))
        ).click()
    with page.expect_download() as manifest_info:
        delivery.get_by_role(
            "link", name=re.compile("^" + re.escape(DE["console.delivery.download_manifest"]))
        ).click()
    annex = Path(annex_info.value.path()).read_bytes()
    manifest = json.loads(Path(manifest_info.value.path()).read_text("utf-8"))
    assert annex_info.value.suggested_filename == f"{demo.slug}-signatures-1.csv"
    assert hashlib.sha256(annex).hexdigest() == manifest["annex"]["sha256"]
    [made] = session.exec(select(PetitionDelivery)).all()
    assert manifest["annex"]["sha256"] == made.annex_sha256
    assert annex.decode("utf-8-sig").splitlines()[0] == "name,country,postcode"
    expect(delivery.get_by_test_id("sha256")).to_have_text(made.annex_sha256)

    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        page.set_viewport_size({"width": 1280, "height": 900})
        page.screenshot(path=str(ROOT / "docs" / "console-delivery.png"), full_page=True)
        page.set_viewport_size(PHONE)
    page.screenshot(path=str(tmp_path / "delivery.png"), full_page=True)

    # The postal official's letter prints, and is marked posted.
    [to_print] = session.exec(
        select(LetterDelivery).where(LetterDelivery.target_id == postal.id)
    ).all()
    row = page.get_by_test_id(f"print-{to_print.id}")
    pdf_url = row.get_by_role("link").get_attribute("href")
    printed = page.request.get(strict_server.url + str(pdf_url))
    assert printed.status == 200 and printed.headers["content-type"] == "application/pdf"
    assert printed.body().startswith(b"%PDF")
    row.get_by_role("button", name=re.compile("^" + DE["console.delivery.mark_posted"])).click()
    expect(page.get_by_test_id("done")).to_have_text(DE["console.delivery.done.posted"])
    expect(page.get_by_test_id(f"print-{to_print.id}")).to_have_count(0)

    # The held near-duplicate, read and released.
    [held] = page.locator("[data-testid^=held-]").all()
    expect(held).to_contain_text("Please send them where they ask to go")
    check(page, complaints, "delivery, posted")
    held.get_by_role("button", name=re.compile("^" + DE["console.delivery.release"])).click()
    expect(page.get_by_test_id("done")).to_have_text(DE["console.delivery.done.released"])
    expect(page.get_by_text(DE["console.delivery.none_held"])).to_be_visible()

    # The log: every letter, with its state.
    page.get_by_role("link", name=DE["console.delivery.log_link"]).click()
    expect(page.locator("h1")).to_have_text(DE["console.delivery.log"])
    check(page, complaints, "delivery log")
    page.get_by_label(DE["console.delivery.state"]).select_option("sent")
    page.get_by_role("button", name=DE["console.delivery.filter"]).click()
    expect(page.locator("[data-testid=state]")).to_have_count(5 + settings.LETTER_DUPLICATE_LIMIT)
    check(page, complaints, "delivery log, filtered")
