"""Plurals, numbers, amounts, dates and country lists in each language (Babel, CLDR)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.core.config import Settings
from app.core.i18n import country_names, date_time, long_date, money, number, translate
from app.letters import engine
from app.petitions.models import Petition
from app.signatures import service as signature_service
from app.signatures.models import Signature, SignatureCreate
from tests.conftest import Mailbox, body_text

NBSP = "\u00a0"


def confirm_signers(
    session: Session, settings: Settings, petition: Petition, n: int, *, start: int = 0
) -> None:
    for i in range(start, start + n):
        data = SignatureCreate.model_construct(
            name=f"Signer {i}", email=f"signer{i}@example.org", country="UA", consent_updates=False
        )
        signature_service.sign(
            session, petition=petition, data=data, locale="en", settings=settings
        )
    session.commit()
    for signature in session.exec(select(Signature)).all():
        assert signature.id is not None
        token = signature_service.confirmation_token(settings, signature_id=signature.id)
        signature_service.confirm(session, token=token, settings=settings)
    session.commit()


def shown_count(html: str) -> str:
    match = re.search(r'data-testid="signature-count">([^<]*)<', html)
    assert match, html
    return match.group(1)


# --- plurals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "count", "expected"),
    [
        ("en", 1, "1 signature"),
        ("en", 2, "2 signatures"),
        ("en", 0, "0 signatures"),
        ("uk", 1, "1 підпис"),
        ("uk", 3, "3 підписи"),
        ("uk", 5, "5 підписів"),
        ("uk", 11, "11 підписів"),
        ("uk", 21, "21 підпис"),
        ("uk", 22, "22 підписи"),
        ("ko", 1, "서명 1명"),
        ("ko", 5, "서명 5명"),
    ],
)
def test_counts_take_the_plural_form_of_their_language(
    locale: str, count: int, expected: str
) -> None:
    assert translate(locale, "petition.count", count=count) == expected


def test_other_counted_strings_are_plural_too() -> None:
    assert translate("en", "letters.confirmed.sent", count=1).startswith(
        "Your letter is on its way to 1 official."
    )
    assert "to 2 officials." in translate("en", "letters.confirmed.sent", count=2)
    assert "1 посадовцю" in translate("uk", "letters.confirmed.sent", count=1)
    assert translate("en", "email.confirm.expiry", count=1) == "The link is valid for 1 day."
    assert translate("uk", "email.confirm.expiry", count=3) == "Посилання дійсне 3 дні."
    assert "(1 row)" in translate("en", "letters.annex_link", count=1, filename="f", url="u")
    assert "(5 рядків)" in translate("uk", "letters.annex_link", count=5, filename="f", url="u")


def test_the_petition_page_says_1_signature_in_each_language(
    client: TestClient, demo: Petition, session: Session, settings: Settings
) -> None:
    confirm_signers(session, settings, demo, 1)
    assert shown_count(client.get(f"/petitions/{demo.slug}?lang=en").text) == "1 signature"
    assert shown_count(client.get(f"/petitions/{demo.slug}?lang=uk").text) == "1 підпис"
    assert shown_count(client.get(f"/petitions/{demo.slug}?lang=ko").text) == "서명 1명"
    confirm_signers(session, settings, demo, 2, start=1)
    assert shown_count(client.get(f"/petitions/{demo.slug}?lang=uk").text) == "3 підписи"


def test_the_confirmation_e_mail_counts_days_in_the_signers_language(
    client: TestClient, demo: Petition, smtp: Mailbox, outbox: Any, settings: Settings
) -> None:
    response = client.post(
        f"/api/v1/petitions/{demo.slug}/signatures",
        json={"name": "Олена", "email": "olena@example.org", "country": "UA", "locale": "uk"},
    )
    assert response.status_code == 202, response.text
    outbox()
    days = settings.CONFIRMATION_TOKEN_TTL_HOURS // 24
    assert days == 7  # "7 днів": the `many` form
    assert "Посилання дійсне 7 днів." in body_text(smtp.wait_for(1)[0])


# --- numbers, amounts, dates -----------------------------------------------------------------


def test_numbers_are_written_the_locales_way() -> None:
    assert number(100_000, "en") == "100,000"
    assert number(100_000, "ko") == "100,000"
    assert number(100_000, "uk") == f"100{NBSP}000"
    assert number(1.5, "uk") == "1,5"
    assert translate("uk", "petition.goal", count=100_000) == f"Мета: 100{NBSP}000 підписів"


def test_pages_write_numbers_in_the_pages_language(client: TestClient, demo: Petition) -> None:
    uk = client.get(f"/petitions/{demo.slug}?lang=uk").text
    assert f"Мета: 100{NBSP}000 підписів" in uk
    assert "100,000" not in uk
    assert "Goal: 100,000 signatures" in client.get(f"/petitions/{demo.slug}?lang=en").text
    home = client.get("/?lang=uk").text
    assert f"100{NBSP}000" in home and "100,000" not in home


def test_amounts_are_written_the_locales_way(client: TestClient, demo: Petition) -> None:
    assert money(1_000_000, "KRW", "ko", exponent=0) == "₩1,000,000"
    assert money(2550, "EUR", "en", exponent=2) == "€25.50"
    assert money(20000, "UAH", "uk", exponent=2) == f"200,00{NBSP}₴"
    page = client.get("/campaigns/protect-captured-north-korean-soldiers/donate?lang=uk").text
    assert f"200,00{NBSP}₴" in page  # the first preset, in hryvnias
    assert "₴200.00" not in page


def test_dates_are_written_the_locales_way() -> None:
    moment = datetime(2026, 11, 30, 19, 5, tzinfo=UTC)
    assert long_date(date(2026, 11, 30), "en") == "30 November 2026"
    assert long_date(date(2026, 11, 30), "ko") == "2026년 11월 30일"
    assert date_time(moment, "en") == "30 November 2026, 19:05 UTC"
    assert date_time(moment, "uk") == "30 листопада 2026\u202fр., 19:05 UTC"
    assert date_time(moment, "ko") == "2026년 11월 30일 오후 7:05 UTC"


@pytest.mark.parametrize(
    ("language", "expected"), [("en", "12,345"), ("ko", "12,345"), ("uk", f"12{NBSP}345")]
)
def test_the_letters_number_filter_writes_the_letters_language(
    language: str, expected: str
) -> None:
    rendered = engine.render(
        "{{ petition.goal|number }}",
        "{{ petition.goal|number }}",
        {"petition": {"goal": 12345}},
        language=language,
    )
    assert rendered.subject == expected and rendered.text == expected


def test_letters_choose_plural_forms_by_their_language() -> None:
    body = "{{ n|plural(one='підпис', few='підписи', many='підписів', other='підпису') }}"
    words = [engine.render("s", body, {"n": n}, language="uk").text for n in (1, 3, 5, 21, 1.5)]
    assert words == ["підпис", "підписи", "підписів", "підпис", "підпису"]
    english = "{{ n|number }} {{ n|plural(one='signature', other='signatures') }}"
    assert engine.render("s", english, {"n": 1}, language="en").text == "1 signature"
    assert engine.render("s", english, {"n": 1000}, language="en").text == "1,000 signatures"


# --- country lists ---------------------------------------------------------------------------


def test_ukrainian_country_names_sort_in_the_ukrainian_alphabet() -> None:
    names = [name for _code, name in country_names("uk")]
    assert names[0] == "Австралія"
    assert names.index("Австралія") < names.index("Єгипет") < names.index("Італія")
    # Є follows Е; І and Ї follow И; Й follows Ї.
    assert names.index("Ефіопія") < names.index("Єгипет") < names.index("Ємен")
    assert names.index("Зімбабве") < names.index("Ізраїль") < names.index("Йорданія")
    assert names.index("Іспанія") < names.index("Італія") < names.index("Йорданія")
    assert names[-1] == "Японія"


def test_english_country_names_sort_with_accents_ignored() -> None:
    names = [name for _code, name in country_names("en")]
    assert names.index("Åland Islands") == names.index("Afghanistan") + 1
    assert names.index("Åland Islands") + 1 == names.index("Albania")
    assert names[-1] == "Zimbabwe"
    assert names.index("Côte d’Ivoire") < names.index("Croatia")


def test_korean_country_names_sort_in_hangul_order() -> None:
    names = [name for _code, name in country_names("ko")]
    assert names[0].startswith("가")
    assert names == sorted(names)  # Hangul's code points are in dictionary order


def test_the_sign_forms_country_picker_is_in_alphabetical_order(
    client: TestClient, demo: Petition
) -> None:
    html = client.get(f"/petitions/{demo.slug}?lang=uk").text
    picker = html.split('id="f-country"', 1)[1].split("</select>", 1)[0]
    options = re.findall(r'<option value="[A-Z]{2}"[^>]*>([^<]*)</option>', picker)
    assert options[0] == "Австралія"
    assert options.index("Єгипет") < options.index("Італія") < options.index("Японія")
