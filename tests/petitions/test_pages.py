"""The server-rendered petition pages and the HTML sign form (no JavaScript involved)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.core.i18n import translate
from app.petitions.models import PetitionStatus
from app.signatures.models import Signature
from tests.conftest import Mailbox, confirm_link
from tests.factories import make_petition


def field_error(html: str, field: str) -> str | None:
    match = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', html)
    return match.group(1) if match else None


def test_petition_page_shows_petition_targets_count_and_form(
    client: TestClient, demo, session: Session
) -> None:
    page = client.get("/petitions/no-forced-return")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert f"<h1>{demo.translations['en']['title']}</h1>" in html
    assert "President of Ukraine" in html
    assert "0 signatures" in html
    assert "Goal: 100,000 signatures" in html
    # Accessible, labelled form fields that work without JavaScript.
    for field in ("name", "email", "country", "postcode"):
        assert f'<label for="f-{field}">' in html
        assert f'id="f-{field}" name="{field}"' in html
    assert 'method="post" action="/petitions/no-forced-return/sign"' in html
    assert 'name="consent_updates"' in html
    assert '<meta name="viewport"' in html


def test_language_from_query_then_accept_language_then_default(client: TestClient, demo) -> None:
    korean = demo.translations["ko"]["title"]
    ukrainian = demo.translations["uk"]["title"]
    english = demo.translations["en"]["title"]

    assert korean in client.get("/petitions/no-forced-return?lang=ko").text
    accept_uk = {"Accept-Language": "uk-UA,uk;q=0.9,en;q=0.8"}
    assert ukrainian in client.get("/petitions/no-forced-return", headers=accept_uk).text
    # ?lang= wins over Accept-Language.
    assert korean in client.get("/petitions/no-forced-return?lang=ko", headers=accept_uk).text
    # Unknown languages fall back to the petition's default.
    assert english in client.get("/petitions/no-forced-return?lang=fr").text
    accept_fr = {"Accept-Language": "fr-FR,fr;q=0.9"}
    assert english in client.get("/petitions/no-forced-return", headers=accept_fr).text
    # q-values are respected.
    weighted = {"Accept-Language": "en;q=0.2, ko;q=0.9"}
    page = client.get("/petitions/no-forced-return", headers=weighted).text
    assert korean in page
    assert '<html lang="ko">' in page


def test_language_switcher_links_every_language(client: TestClient, demo) -> None:
    html = client.get("/petitions/no-forced-return?lang=uk").text
    assert 'href="/petitions/no-forced-return?lang=en"' in html
    assert 'href="/petitions/no-forced-return?lang=ko"' in html
    assert re.search(r'href="/petitions/no-forced-return\?lang=uk"[^>]*aria-current="true"', html)
    assert "한국어" in html and "Українська" in html


def test_form_errors_are_shown_next_to_the_fields_and_input_is_kept(
    client: TestClient, demo, session: Session
) -> None:
    response = client.post(
        "/petitions/no-forced-return/sign",
        data={"name": "Kim Min-jun", "email": "kim@", "country": "", "locale": "en"},
    )
    assert response.status_code == 422
    html = response.text
    assert field_error(html, "email") == translate("en", "errors.email_invalid")
    assert field_error(html, "country") == translate("en", "errors.country_invalid")
    assert field_error(html, "name") is None
    assert 'value="Kim Min-jun"' in html
    assert 'aria-invalid="true" aria-describedby="e-email"' in html
    assert session.exec(select(Signature)).all() == []


def test_form_errors_are_in_the_page_language(client: TestClient, demo) -> None:
    response = client.post(
        "/petitions/no-forced-return/sign",
        data={"name": "=SUM(1)", "email": "kim@example.org", "country": "KR", "locale": "ko"},
    )
    assert response.status_code == 422
    assert field_error(response.text, "name") == translate("ko", "errors.name_formula")
    assert '<html lang="ko">' in response.text


def test_signing_through_the_form(
    client: TestClient, demo, session: Session, smtp: Mailbox, outbox
) -> None:
    response = client.post(
        "/petitions/no-forced-return/sign",
        data={
            "name": "Олена Коваль",
            "email": "olena@example.org",
            "country": "UA",
            "postcode": "01001",
            "consent_updates": "yes",
            "locale": "uk",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/petitions/no-forced-return/thanks?lang=uk"
    thanks = client.get(response.headers["location"])
    assert translate("uk", "thanks.title") in thanks.text

    stored = session.exec(select(Signature)).one()
    assert (
        stored.name,
        stored.country,
        stored.postcode,
        stored.consent_updates,
        stored.locale,
    ) == ("Олена Коваль", "UA", "01001", True, "uk")

    outbox()
    [message] = smtp.wait_for(1)
    assert "lang=uk" in confirm_link(message)


def test_closed_petition_page_has_no_form_and_refuses_posts(
    client: TestClient, session: Session
) -> None:
    petition = make_petition(session, status=PetitionStatus.closed)
    html = client.get(f"/petitions/{petition.slug}").text
    assert translate("en", "petition.refusal.closed") in html
    assert '<form class="sign"' not in html
    response = client.post(
        f"/petitions/{petition.slug}/sign",
        data={"name": "Kim", "email": "kim@example.org", "country": "KR"},
    )
    assert response.status_code == 422
    assert translate("en", "petition.refusal.closed") in response.text
    assert session.exec(select(Signature)).all() == []


def test_draft_petitions_are_not_public(client: TestClient, session: Session) -> None:
    petition = make_petition(session, status=PetitionStatus.draft)
    page = client.get(f"/petitions/{petition.slug}", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert client.get(f"/api/v1/petitions/{petition.slug}").status_code == 404
    listed = client.get("/api/v1/petitions").json()
    assert petition.slug not in [p["slug"] for p in listed["data"]]


def test_home_lists_petitions_with_counts(client: TestClient, demo) -> None:
    html = client.get("/?lang=ko").text
    assert demo.translations["ko"]["title"] in html
    assert 'href="/petitions/no-forced-return?lang=ko"' in html


def test_api_lists_petitions(client: TestClient, demo) -> None:
    body = client.get("/api/v1/petitions?lang=uk").json()
    assert body["count"] == 1
    [item] = body["data"]
    assert item["slug"] == "no-forced-return"
    assert item["title"] == demo.translations["uk"]["title"]
    assert item["signature_count"] == 0
    assert item["goal"] == 100000
    detail = client.get("/api/v1/petitions/no-forced-return").json()
    assert detail["locales"] == ["en", "ko", "uk"]
    assert len(detail["targets"]) == 5
    assert detail["campaign"] == "protect-captured-north-korean-soldiers"
