"""The per-process read cache: public reads are reused for CACHE_SECONDS, then refreshed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, update
from sqlmodel import Session, select

from app.core import cache, http
from app.core.config import Settings
from app.main import create_app
from app.petitions.models import Petition
from app.rights.service import manage_token
from app.signatures.models import Signature
from app.signatures.service import confirmation_token
from app.updates.service import unsubscribe_token


def test_public_reads_are_reused_briefly_then_refreshed(
    settings: Settings, engine: Any, demo: Any, session: Session
) -> None:
    cache.clear()
    app = create_app(settings.model_copy(update={"CACHE_SECONDS": 0.5}))
    with TestClient(app) as client:
        built = client.get("/api/v1/petitions/no-forced-return")
        first = built.json()
        page = client.get("/petitions/no-forced-return?lang=ko")
        assert page.status_code == 200 and "content-length" in page.headers
        session.execute(update(Petition).values(goal=7))
        session.commit()
        # Within the cache time: the same answer, without touching the database (answered
        # before the application, with the same headers, security headers included, and a
        # request ID of its own).
        again = client.get("/api/v1/petitions/no-forced-return")
        assert again.json() == first
        assert again.headers["content-type"] == "application/json"
        assert again.headers["x-frame-options"] == "DENY"
        assert again.headers["x-request-id"] != built.headers["x-request-id"]
        traced = client.get("/api/v1/petitions/no-forced-return", headers={"X-Request-ID": "t-7"})
        assert traced.headers["x-request-id"] == "t-7"  # (a sane incoming ID is kept)

        def fixed(headers: Any) -> list[tuple[str, str]]:
            return sorted((k, v) for k, v in headers.items() if k not in ("x-request-id", "date"))

        assert fixed(again.headers) == fixed(built.headers)
        assert "content-security-policy" in again.headers
        time.sleep(0.6)
        assert client.get("/api/v1/petitions/no-forced-return").json()["goal"] == 7
        # A different language is a different entry.
        korean = client.get("/api/v1/petitions/no-forced-return?lang=ko").json()
        assert korean["locale"] == "ko"
    cache.clear()


@pytest.fixture
def counting(settings: Settings, engine: Any) -> Iterator[tuple[TestClient, list[str]]]:
    """A client of an app that caches for 30 s, and the SQL statements that app runs."""
    cache.clear()
    app = create_app(settings.model_copy(update={"CACHE_SECONDS": 30}))
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(app.state.engine, "before_cursor_execute", record)
    with TestClient(app) as client:
        yield client, seen
    event.remove(app.state.engine, "before_cursor_execute", record)
    cache.clear()


def test_tracking_parameters_and_spellings_of_a_language_share_one_cache_entry(
    counting: tuple[TestClient, list[str]], demo: Any
) -> None:
    client, seen = counting
    page = "/petitions/no-forced-return"
    first = client.get(f"{page}?fbclid=first")
    assert first.status_code == 200 and len(seen) > 0
    statements = len(seen)
    for i in range(50):
        again = client.get(f"{page}?fbclid=IwAR{i}x&utm_source=share{i}")
        assert again.status_code == 200 and again.text == first.text
    assert len(seen) == statements  # 50 requests, no more SQL than one

    # The languages Chorus has, in the order asked for, are the key, not the header's
    # spelling (the page's language is the first of them the petition has).
    korean = client.get(page, headers={"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.8,de;q=0.7"})
    just_korean = client.get(page, headers={"Accept-Language": "ko"})
    statements = len(seen)
    for header in ["ko;q=0.9, en;q=0.5", "de-DE,ko-kr,ko,en", "KO, EN-gb"]:
        assert client.get(page, headers={"Accept-Language": header}).text == korean.text
    for header in ["ko-KR", "KO-kr,ko", "ko, *;q=0.1", "de,ko"]:
        assert client.get(page, headers={"Accept-Language": header}).text == just_korean.text
    assert client.get(f"{page}?lang=ko&fbclid=x").text == just_korean.text
    assert len(seen) == statements
    assert 'lang="ko"' in korean.text and korean.text != first.text

    api = "/api/v1/petitions/no-forced-return"
    client.get(f"{api}?lang=uk")
    statements = len(seen)
    for i in range(20):
        assert client.get(f"{api}?lang=uk&gclid={i}").json()["locale"] == "uk"
    assert len(seen) == statements
    # A lang the API refuses still reaches the route.
    assert client.get(f"{api}?lang={'x' * 36}").status_code == 422


def test_cache_headers_say_who_may_keep_a_response(
    counting: tuple[TestClient, list[str]], demo: Any, session: Session
) -> None:
    client, _ = counting
    for _ in range(2):  # built, then answered from the cache before routing
        page = client.get("/petitions/no-forced-return?fbclid=abc")
        assert page.headers["cache-control"] == "public, max-age=30, stale-while-revalidate=60"
        assert page.headers["vary"] == "Accept-Language, Accept-Encoding"
        api = client.get("/api/v1/petitions/no-forced-return")
        assert api.headers["cache-control"] == "public, max-age=30, stale-while-revalidate=60"
        assert api.headers["vary"] == "Accept-Encoding"  # (the API's language is ?lang=)
    signed = client.post(
        "/api/v1/petitions/no-forced-return/signatures",
        json={"name": "Mina Kim", "email": "mina@example.org", "country": "KR"},
    )
    assert signed.headers["cache-control"] == "private, no-store"
    signature = session.exec(select(Signature)).one()
    assert signature.id is not None
    settings = client.app.state.settings  # type: ignore[attr-defined]
    tokened = [
        f"/signatures/confirm/{confirmation_token(settings, signature_id=signature.id)}",
        f"/signatures/manage/{manage_token(settings, signature_id=signature.id)}",
        f"/unsubscribe/{unsubscribe_token(settings, signature_id=signature.id)}",
    ]
    for path in tokened:
        response = client.get(path)
        assert response.status_code == 200, path
        assert "no-store" in response.headers["cache-control"], path
        assert "public" not in response.headers["cache-control"], path
    confirmed = client.post(
        "/api/v1/signatures/confirm", json={"token": tokened[0].rsplit("/")[-1]}
    )
    assert confirmed.headers["cache-control"] == "private, no-store"


@pytest.mark.parametrize(
    ("header", "gzip"),
    [
        ("gzip, deflate, br, zstd", True),
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", True),
        ("*", True),
        ("x-gzip", True),
        ("", False),
        ("identity", False),
        ("br, zstd", False),
        ("gzip;q=0", False),
        ("gzip; q=0.000, *", False),
        ("*;q=0", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_gzip_is_used_when_the_client_accepts_it(header: str, gzip: bool) -> None:
    assert http.accepts_gzip(header) is gzip


def test_public_reads_go_compressed_to_clients_that_accept_gzip(
    counting: tuple[TestClient, list[str]], demo: Any
) -> None:
    client, seen = counting
    for path, vary in (
        ("/petitions/no-forced-return", "Accept-Language, Accept-Encoding"),
        ("/api/v1/petitions/no-forced-return", "Accept-Encoding"),
    ):
        built = client.get(path, headers={"Accept-Encoding": "identity"})  # the route builds it
        statements = len(seen)
        for _ in range(2):  # answered from the cache, before the application
            plain = client.get(path, headers={"Accept-Encoding": "identity"})
            packed = client.get(path, headers={"Accept-Encoding": "gzip, deflate, br"})
            refused = client.get(path, headers={"Accept-Encoding": "gzip;q=0, br"})
            assert "content-encoding" not in plain.headers
            assert "content-encoding" not in refused.headers
            assert packed.headers["content-encoding"] == "gzip"
            assert packed.content == plain.content == refused.content == built.content
            assert int(plain.headers["content-length"]) == len(plain.content)
            # The body went compressed: at most half its size.
            assert int(packed.headers["content-length"]) * 2 < len(plain.content)
            for answer in (built, plain, packed):
                assert answer.headers["vary"] == vary, path
                assert answer.headers["x-frame-options"] == "DENY"
        assert len(seen) == statements
    # What compression would not shrink (a PNG) goes as it is, to everyone.
    card = client.get("/petitions/no-forced-return/card.png", headers={"Accept-Encoding": "gzip"})
    assert card.status_code == 200 and card.headers["content-type"] == "image/png"
    assert "content-encoding" not in card.headers and "Accept-Encoding" not in card.headers.get(
        "vary", ""
    )
