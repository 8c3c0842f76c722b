"""Error pages in the visitor's language, a helpful page for a GET on a form's address, and
redirects that never name another host."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.core.i18n import translate
from tests.factories import make_petition

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def heading(html: str) -> str:
    match = re.search(r"<h1>([^<]*)</h1>", html)
    assert match, html
    return match.group(1)


@pytest.mark.parametrize("locale", ["en", "ko", "uk"])
def test_not_found_pages_speak_the_visitors_language(client: TestClient, locale: str) -> None:
    by_header = client.get("/no-such-page", headers={**BROWSER, "Accept-Language": locale})
    assert by_header.status_code == 404
    assert by_header.headers["content-type"].startswith("text/html")
    assert f'<html lang="{locale}">' in by_header.text
    assert heading(by_header.text) == translate(locale, "error.not_found")
    assert translate(locale, "error.home") in by_header.text

    by_query = client.get(f"/petitions/no-such-petition?lang={locale}", headers=BROWSER)
    assert by_query.status_code == 404
    assert heading(by_query.text) == translate(locale, "error.not_found")


def test_a_get_on_a_forms_address_shows_a_page_with_the_way_back(
    client: TestClient, session: Session
) -> None:
    petition = make_petition(session, locales=("en", "ko"))
    session.commit()
    for path, back in [
        (f"/petitions/{petition.slug}/sign", f"/petitions/{petition.slug}?lang=ko"),
        (f"/petitions/{petition.slug}/letters", f"/petitions/{petition.slug}?lang=ko"),
        ("/signatures/manage/some-token/withdraw", "/signatures/manage/some-token?lang=ko"),
        ("/signatures/manage/some-token/consent/withdraw", "/signatures/manage/some-token?lang=ko"),
    ]:
        page = client.get(path, headers={**BROWSER, "Accept-Language": "ko-KR,ko;q=0.9"})
        assert page.status_code == 405, path
        assert page.headers["content-type"].startswith("text/html"), path
        assert page.headers["allow"] == "POST"
        assert heading(page.text) == translate("ko", "error.method_not_allowed")
        assert f'<a href="{back}" data-testid="back">' in page.text, path
        assert translate("ko", "error.back_to_form") in page.text

    # Scripts still get problem JSON.
    api = client.get(f"/petitions/{petition.slug}/sign")
    assert api.status_code == 405
    assert api.headers["content-type"] == "application/problem+json"


def test_api_errors_stay_problem_json_even_for_a_browser(client: TestClient) -> None:
    response = client.get("/api/v1/petitions/no-such-petition", headers=BROWSER)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_trailing_slash_redirects_ignore_the_host_header(client: TestClient) -> None:
    for path, target in [
        ("/api/v1/petitions/", "/api/v1/petitions"),
        ("/api/v1/petitions/?after=x", "/api/v1/petitions?after=x"),
        ("/signatures/confirm/abc/", "/signatures/confirm/abc"),
    ]:
        response = client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
        assert response.status_code == 307, path
        assert response.headers["location"] == target
    # A path that a browser would read as another host is never redirected.
    for path in ["//evil.example/", "//evil.example", "/\\evil.example/"]:
        url = f"http://testserver{path}"
        response = client.get(url, headers={"Host": "evil.example"}, follow_redirects=False)
        assert response.request.url.path == path
        assert "evil.example" not in response.headers.get("location", ""), path
        assert response.status_code == 404, path
