"""The organiser's whole job, end to end, in a real browser at 390 px (issue 13, "Done when").

An admin made with `chorus create-admin` (the README's way) creates the campaign and an organiser
account in the console; the organiser signs in at /admin/login and, through the console alone,
writes a petition in English and Korean, adds an official who gets e-mail, addresses the petition
to them and opens it. A supporter signs on the public page and confirms with the link of the
e-mail the real SMTP server received (sent by the real outbox worker). The console's petition page
then shows the count and the chart; the organiser saves a delivery letter with a sandbox error,
sees it beside its line, fixes it and previews it as the official gets it; delivers the petition
(the official receives that letter with the real count) and downloads the annex and the manifest,
whose SHA-256 must agree; finally downloads the signatures as CSV. Every console page on the way
passes axe (no serious or critical violation), has no horizontal scroll at 390 px and no CSP
complaint (`check`).

Each step is a function of the `Journey` (the browser page, the server, the names of the
campaign, petition, official and supporter), called in order by the test: a step can be added
between two others without changing the rest.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlmodel import Session, select

from app.letters.models import PetitionDelivery
from app.petitions.models import Petition, PetitionStatus
from tests.conftest import ROOT, Account, LiveServer, Mailbox, body_text, confirm_link
from tests.console.test_console_browser import (  # noqa: F401 (fixtures)
    EN,
    PHONE,
    browser,
    check,
    new_page,
    sign_in_as,
    strict_server,
)
from tests.processes import chorus_env
from tests.test_browser import KO as PUBLIC_KO
from tests.test_browser import _run_outbox
from tests.test_cli import run_chorus

pytestmark = pytest.mark.browser

KO: dict[str, str] = json.loads((ROOT / "app/locales/console.ko.json").read_text("utf-8"))
DELIVERY: dict[str, str] = json.loads(
    (ROOT / "app/locales/console-delivery.en.json").read_text("utf-8")
)


@dataclass
class Journey:
    """Where the journey is: the server, the organiser's page, and the names it created."""

    server: LiveServer
    page: Any  # the organiser's page (Playwright), signed in from step 2 on
    complaints: list[str]  # the CSP complaints and script errors of that page
    campaign: str = "kursk-soldiers"
    campaign_name: str = "No forced return"
    petition: str = "two-soldiers"
    title_en: str = "Do not send the two soldiers back"
    title_ko: str = "두 병사를 돌려보내지 마세요"
    official_key: str = "kr-unification"
    official: str = "Minister of Unification"
    official_email: str = "minister@unification.example"
    supporter: str = "김민지"
    supporter_email: str = "minji.kim@example.org"
    organiser: Account | None = None

    def url(self, path: str) -> str:
        return self.server.url + path

    def check(self, what: str) -> None:
        check(self.page, self.complaints, what)

    def nav(self, name: str) -> Any:
        """A link of the console's main navigation."""
        return self.page.get_by_role("navigation", name=EN["console.nav.label"]).get_by_role(
            "link", name=name
        )

    def dashboard(self, what: str) -> None:
        self.nav(EN["console.nav.dashboard"]).click()
        self.page.wait_for_url(self.url("/admin/"))
        self.check(f"dashboard, {what}")

    def to_petition(self, what: str) -> None:
        """The petition's page, from the dashboard, as a person goes there."""
        self.dashboard(what)
        self.page.get_by_test_id(f"petition-{self.petition}").get_by_role("link").click()
        self.page.wait_for_url(self.url(f"/admin/petitions/{self.petition}*"))
        self.check(f"petition, {what}")


# --- 1. accounts: an admin from the command line, who creates the campaign and its organiser ----


def admin_from_the_command_line(server: LiveServer) -> Account:
    email, password = "admin@chorus.example", "the first admin's long password"
    made = run_chorus(
        "create-admin",
        "--email",
        email,
        "--password",
        password,
        "--name",
        "First Admin",
        env=chorus_env(server.settings),
    )
    assert made.returncode == 0, made.stderr
    return Account(email=email, password=password, headers={})


def admin_creates_the_campaign_and_its_organiser(chromium: Any, journey: Journey) -> Account:
    from playwright.sync_api import expect

    admin = admin_from_the_command_line(journey.server)
    page, complaints = new_page(chromium, PHONE)
    sign_in_as(page, journey.server, admin)
    check(page, complaints, "admin: dashboard, no campaign yet")
    nav = page.get_by_role("navigation", name=EN["console.nav.label"])

    nav.get_by_role("link", name=EN["console.nav.new_campaign"]).click()
    check(page, complaints, "admin: new campaign")
    page.get_by_label(EN["console.field.slug"]).fill(journey.campaign)
    page.locator("fieldset[lang=en]").get_by_label(EN["console.field.name"]).fill(
        journey.campaign_name
    )
    page.locator("fieldset[lang=ko]").get_by_label(EN["console.field.name"]).fill("강제 송환 반대")
    page.get_by_role("button", name=EN["console.new_campaign.submit"]).click()
    expect(page.get_by_role("status")).to_have_text(EN["console.done.campaign-created"])
    check(page, complaints, "admin: campaign created, its first petition")

    organiser = Account("organiser@chorus.example", "the organiser's long password", {})
    nav.get_by_role("link", name=EN["console.nav.accounts"]).click()
    check(page, complaints, "admin: accounts")
    page.get_by_role("link", name=EN["console.accounts.new"]).click()
    check(page, complaints, "admin: new account")
    page.get_by_label(EN["console.field.email"]).fill(organiser.email)
    page.get_by_label(EN["console.field.person_name"]).fill("Mykola")
    page.get_by_label(EN["console.field.password"]).fill(organiser.password)
    page.get_by_label(EN["console.role.choice.organiser"]).check()
    page.get_by_label(journey.campaign_name).check()
    page.get_by_role("button", name=EN["console.accounts.create"]).click()
    expect(page.get_by_role("status")).to_have_text(EN["console.done.account-created"])
    check(page, complaints, "admin: account created")
    page.get_by_role("button", name=EN["console.sign_out"]).click()
    page.wait_for_url("**/admin/login")
    page.context.close()
    return organiser


def organiser_signs_in(journey: Journey) -> None:
    from playwright.sync_api import expect

    assert journey.organiser is not None
    journey.page.goto(journey.url("/admin/"))
    journey.page.wait_for_url("**/admin/login")
    journey.check("sign-in")
    sign_in_as(journey.page, journey.server, journey.organiser)
    expect(journey.page.locator("h1")).to_have_text(EN["console.dashboard.title"])
    expect(journey.page.get_by_role("heading", name=journey.campaign_name)).to_be_visible()
    journey.check("dashboard, no petition yet")


# --- 2. the petition, in English and Korean, addressed to a new official, opened ------------------


def organiser_writes_the_petition(journey: Journey) -> None:
    from playwright.sync_api import expect

    page = journey.page
    page.get_by_role("link", name=EN["console.dashboard.new_petition"]).click()
    expect(page.locator("h1")).to_have_text(EN["console.new_petition.title"])
    journey.check("new petition")
    page.get_by_label(EN["console.field.slug"]).fill(journey.petition)
    page.get_by_label(EN["console.field.goal"]).fill("1000")
    page.get_by_label(EN["console.field.default_locale"]).select_option("en")
    for code, title, summary, body in (
        ("en", journey.title_en, "Protect them.", "The first paragraph.\n\nThe second."),
        ("ko", journey.title_ko, "그들을 보호하세요.", "첫 문단.\n\n둘째 문단."),
    ):
        texts = page.locator(f"fieldset[lang={code}]")
        texts.get_by_label(EN["console.field.title"]).fill(title)
        texts.get_by_label(EN["console.field.summary"]).fill(summary)
        texts.get_by_label(EN["console.field.body"]).fill(body)
    page.get_by_role("button", name=EN["console.new_petition.submit"]).click()
    expect(page.get_by_role("status")).to_have_text(EN["console.done.created"])
    expect(page.locator("h1")).to_have_text(journey.title_en)
    expect(page.locator(".meta .status").first).to_have_text(EN["console.status.draft"])
    journey.check("petition, a draft")


def organiser_adds_the_official(journey: Journey) -> None:
    from playwright.sync_api import expect

    page = journey.page
    page.get_by_role("link", name=EN["console.petition.choose_officials"]).click()
    expect(page.get_by_text(EN["console.choose.no_officials"])).to_be_visible()
    journey.check("choose officials, none yet")
    page.get_by_role("link", name=EN["console.choose.manage"]).click()
    expect(page.locator("h1")).to_have_text(EN["console.officials.title"])
    journey.check("officials")
    page.get_by_role("link", name=EN["console.officials.add"]).click()
    journey.check("new official")
    page.get_by_label(EN["console.field.official_name"]).fill(journey.official)
    page.get_by_label(EN["console.field.key"]).fill(journey.official_key)
    page.get_by_label(EN["console.field.country"]).select_option("KR")
    page.get_by_label(EN["console.field.language"]).fill("en")
    page.get_by_label(EN["console.channel.choice.email"]).check()
    page.get_by_label(EN["console.field.official_email"]).fill(journey.official_email)
    page.locator("fieldset[lang=ko]").get_by_label(EN["console.field.name"]).fill("통일부 장관")
    page.get_by_role("button", name=EN["console.official.submit_new"]).click()
    expect(page.get_by_role("status")).to_have_text(EN["console.done.official-created"])
    expect(page.get_by_test_id(f"official-{journey.official_key}").locator("h3")).to_have_text(
        journey.official
    )
    journey.check("officials, one added")


def organiser_addresses_and_opens_the_petition(journey: Journey) -> None:
    from playwright.sync_api import expect

    page = journey.page
    journey.to_petition("a draft with no official")
    page.get_by_role("link", name=EN["console.petition.choose_officials"]).click()
    page.get_by_role("checkbox", name=journey.official).check()
    page.get_by_label(f"{EN['console.choose.order']} — {journey.official}").fill("1")
    journey.check("choose officials")
    page.get_by_role("button", name=EN["console.form.save"]).click()
    expect(page.get_by_role("status")).to_have_text(EN["console.done.officials"])
    expect(page.locator("ol.targets li strong")).to_have_text([journey.official])
    journey.check("petition, addressed")

    page.get_by_role("link", name=EN["console.action.open"]).click()
    expect(page.locator("h1")).to_have_text(EN["console.confirm.open.title"])
    journey.check("confirm opening")
    page.get_by_role("button", name=EN["console.confirm.open.button"]).click()
    expect(page.get_by_role("status")).to_have_text(EN["console.done.open"])
    expect(page.locator(".meta .status").first).to_have_text(EN["console.status.open"])
    expect(page.get_by_test_id("confirmed")).to_have_text("0")
    journey.check("petition, open")


# --- 3. a supporter signs on the public page, in Korean, and confirms by e-mail -------------------


def supporter_signs_and_confirms(
    chromium: Any, journey: Journey, smtp: Mailbox, outbox: Callable[..., int]
) -> None:
    from playwright.sync_api import expect

    page = chromium.new_context(viewport=PHONE).new_page()  # someone else, on their phone
    page.set_default_timeout(10_000)
    page.goto(journey.url(f"/petitions/{journey.petition}?lang=ko"))
    expect(page.locator("h1")).to_have_text(journey.title_ko)
    form = page.locator("#sign")
    form.get_by_label(PUBLIC_KO["form.name"]).fill(journey.supporter)
    form.get_by_label(PUBLIC_KO["form.email"]).fill(journey.supporter_email)
    form.get_by_label(PUBLIC_KO["form.country"]).select_option("KR")
    form.get_by_label(PUBLIC_KO["form.consent_updates"]).check()
    form.get_by_role("button", name=PUBLIC_KO["form.submit"]).click()
    expect(page.locator("h1")).to_have_text(PUBLIC_KO["thanks.title"])

    assert _run_outbox(outbox) == 1
    [message] = smtp.wait_for(1)
    assert message["To"].addresses[0].addr_spec == journey.supporter_email
    link = urlsplit(confirm_link(message))
    page.goto(journey.url(f"{link.path}?{link.query}" if link.query else link.path))
    page.get_by_role("button", name=PUBLIC_KO["confirm.button"]).click()
    expect(page.locator("h1")).to_have_text(PUBLIC_KO["confirmed.title"])
    page.context.close()


# --- 4. the console shows the signature: the count, and the chart ---------------------------------


def organiser_sees_the_count_and_the_chart(journey: Journey) -> None:
    from playwright.sync_api import expect

    page = journey.page
    journey.dashboard("one signature")
    card = page.get_by_test_id(f"petition-{journey.petition}")
    expect(card.get_by_test_id("confirmed")).to_have_text("1")
    card.get_by_role("link").click()
    journey.check("petition, one signature")
    for figure in ("confirmed", "this-hour", "last-24-hours"):
        expect(page.get_by_test_id(figure)).to_have_text("1")
    expect(page.locator("progress").first).to_have_attribute("value", "1")

    # Per day: one day with the signature, its bar the longest (100 %), every other day 0.
    days = page.locator("section[aria-labelledby=days-title] tbody tr")
    counts = days.locator("td.num").all_inner_texts()
    widths = days.locator("svg.bar rect").evaluate_all("rs => rs.map(r => r.getAttribute('width'))")
    bars = [float(width.removesuffix("%")) for width in widths]
    assert len(counts) == len(bars) >= 7, (counts, widths)
    assert sorted(counts) == ["0"] * (len(counts) - 1) + ["1"], counts
    assert sorted(bars) == [0.0] * (len(bars) - 1) + [100.0], widths
    assert bars[counts.index("1")] == 100.0, (counts, widths)
    # By country: the supporter's.
    countries = page.locator("section[aria-labelledby=countries-title] tbody tr")
    expect(countries).to_have_count(1)
    expect(countries.locator("td.num")).to_have_text("1")


# --- 5. the delivery letter: an error beside its line, fixed, previewed as the official gets it ---


def organiser_writes_the_delivery_letter(journey: Journey) -> None:
    from playwright.sync_api import expect

    page = journey.page
    journey.dashboard("before the letter")
    templates = f"{EN['console.templates.title']} — {journey.campaign_name}"
    page.get_by_role("link", name=templates).click()
    expect(page.locator("h1")).to_have_text(EN["console.templates.title"])
    journey.check("letter templates")
    page.get_by_test_id("template-delivery-en").get_by_role("link").click()
    journey.check("delivery letter editor")

    body = page.get_by_label(EN["console.templates.body"])
    body.fill("Dear {{ target.name }},\n\n{{ petition.signers_count }} people ask you.\nYours")
    page.get_by_role("button", name=EN["console.templates.save"], exact=True).click()
    expect(page.get_by_test_id("problem-line-3")).to_contain_text("signers_count")
    expect(page.locator("[data-testid^=problem-line-]")).to_have_count(1)
    expect(body).to_have_value(
        "Dear {{ target.name }},\n\n{{ petition.signers_count }} people ask you.\nYours"
    )
    journey.check("delivery letter, refused")

    body.fill("Dear {{ target.name }},\n\n{{ petition.confirmed_count }} people ask you.\nYours")
    page.get_by_label(EN["console.templates.official"]).select_option(label=journey.official)
    page.get_by_role("button", name=EN["console.templates.preview"]).click()
    preview = page.get_by_test_id("preview-text")
    expect(preview).to_contain_text(f"Dear {journey.official},")
    expect(preview).to_contain_text("1 people ask you.")
    journey.check("delivery letter, previewed")
    page.get_by_role("button", name=EN["console.templates.save"], exact=True).click()
    expect(page.get_by_test_id("saved")).to_have_text(EN["console.templates.saved"])
    expect(page.locator("[data-testid^=problem-line-]")).to_have_count(0)
    journey.check("delivery letter, saved")


# --- 6. delivery: the letter as written, the annex downloaded and checked against the manifest ---


def organiser_delivers_the_petition(
    journey: Journey, session: Session, smtp: Mailbox, outbox: Callable[..., int]
) -> None:
    from playwright.sync_api import expect

    page = journey.page
    journey.to_petition("before delivering")
    page.get_by_role("link", name=DELIVERY["console.petition.delivery"]).click()
    expect(page.locator("h1")).to_have_text(DELIVERY["console.delivery.title"])
    expect(page.get_by_test_id("upcoming")).to_contain_text("1 confirmed signature")
    journey.check("delivery")
    page.get_by_role("button", name=DELIVERY["console.delivery.continue"]).click()
    expect(page.locator("h1")).to_have_text(DELIVERY["console.delivery.confirm_title"])
    journey.check("delivery confirmation")
    page.get_by_role("button", name=DELIVERY["console.delivery.deliver_now"]).click()
    expect(page.get_by_test_id("done")).to_have_text(
        DELIVERY["console.delivery.done.delivered"].format(number=1)
    )
    _run_outbox(outbox)
    # The official gets the letter the organiser wrote in step 5, with the real count.
    [letter] = smtp.to(journey.official_email)
    assert f"Dear {journey.official}," in body_text(letter)
    assert "1 people ask you." in body_text(letter)

    page.reload()
    delivery = page.get_by_test_id("delivery-1")
    expect(delivery.locator("[data-testid=state]", has_text="Sent")).to_have_count(1)
    journey.check("delivered")
    with page.expect_download() as annex_info:
        delivery.get_by_role(
            "link", name=re.compile("^" + re.escape(DELIVERY["console.delivery.download_annex"]))
        ).click()
    with page.expect_download() as manifest_info:
        delivery.get_by_role(
            "link",
            name=re.compile("^" + re.escape(DELIVERY["console.delivery.download_manifest"])),
        ).click()
    annex = Path(annex_info.value.path()).read_bytes()
    manifest = json.loads(Path(manifest_info.value.path()).read_text("utf-8"))
    assert hashlib.sha256(annex).hexdigest() == manifest["annex"]["sha256"]
    [made] = session.exec(select(PetitionDelivery)).all()
    assert made.annex_sha256 == manifest["annex"]["sha256"]
    rows = list(csv.DictReader(io.StringIO(annex.decode("utf-8-sig"))))
    assert [(row["name"], row["country"]) for row in rows] == [(journey.supporter, "KR")]
    assert "email" not in rows[0]  # officials never get e-mail addresses


# --- 7. the signatures, downloaded as CSV ---------------------------------------------------------


def organiser_downloads_the_signatures(journey: Journey) -> None:
    from playwright.sync_api import expect

    page = journey.page
    journey.to_petition("before the download")
    page.get_by_role("link", name=EN["console.petition.signatures"]).click()
    expect(page.locator("h1")).to_have_text(EN["console.signatures.title"])
    expect(page.get_by_test_id("total")).to_have_text("1 signature matches.")
    journey.check("signatures")
    page.get_by_label(EN["console.signatures.format"]).select_option("csv")
    with page.expect_download() as info:
        page.get_by_role("button", name=EN["console.signatures.download"]).click()
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(io.StringIO(file.read())))
    assert [row["email"] for row in rows] == [journey.supporter_email], rows
    [row] = rows
    assert row["name"] == journey.supporter and row["country"] == "KR", row
    assert row["status"] == "confirmed", row


def test_an_organiser_runs_a_petition_from_the_console_alone(
    strict_server: LiveServer,  # noqa: F811 (the fixture imported above)
    browser: Any,  # noqa: F811
    session: Session,
    smtp: Mailbox,
    outbox: Callable[..., int],
) -> None:
    page, complaints = new_page(browser, PHONE)
    journey = Journey(server=strict_server, page=page, complaints=complaints)
    journey.organiser = admin_creates_the_campaign_and_its_organiser(browser, journey)
    organiser_signs_in(journey)
    organiser_writes_the_petition(journey)
    organiser_adds_the_official(journey)
    organiser_addresses_and_opens_the_petition(journey)
    supporter_signs_and_confirms(browser, journey, smtp, outbox)
    organiser_sees_the_count_and_the_chart(journey)
    organiser_writes_the_delivery_letter(journey)
    organiser_delivers_the_petition(journey, session, smtp, outbox)
    organiser_downloads_the_signatures(journey)

    petition = session.exec(select(Petition).where(Petition.slug == journey.petition)).one()
    assert petition.status == PetitionStatus.open
    assert petition.translations["ko"]["title"] == journey.title_ko
