"""Supporters' data rights: the manage link, withdrawing, consent, download, anonymisation."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from app.core.config import Settings
from app.core.db import utcnow
from app.core.tokens import make_token
from app.email.models import OutboxMessage, OutboxStatus, Suppression, SuppressionReason
from app.petitions.models import Petition, PetitionStatus
from app.rights import service as rights_service
from app.signatures import service as signature_service
from app.signatures.models import (
    Signature,
    SignatureHourlyTally,
    SignatureStatus,
    SignatureTally,
)
from app.signatures.service import CONFIRM_PURPOSE
from tests.conftest import LiveServer, Mailbox, body_text, confirm_link, token_of
from tests.factories import make_petition, signer
from tests.test_cli import clean_env, run_chorus

# --- helpers ---------------------------------------------------------------------------------


def manage_link(message: EmailMessage) -> str:
    for line in body_text(message).splitlines():
        if "/signatures/manage/" in line:
            return line.strip()
    raise AssertionError("no manage link in the e-mail")


def manage_token_of(link: str) -> str:
    return link.split("/signatures/manage/", 1)[1].split("?", 1)[0]


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def detail(client: TestClient, slug: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/petitions/{slug}")
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


def sign_and_confirm(client: TestClient, smtp: Mailbox, outbox: Any, slug: str, **data: Any) -> str:
    """Sign through the API, confirm through the e-mail; returns the e-mail's manage link."""
    smtp.clear()
    response = client.post(f"/api/v1/petitions/{slug}/signatures", json=data)
    assert response.status_code == 202
    outbox()
    [message] = smtp.wait_for(1)
    assert client.post(confirm_link(message)).status_code == 200
    return manage_link(message)


def signature_by_email(session: Session, email: str) -> Signature:
    return session.exec(select(Signature).where(Signature.email == email)).one()


def assert_tallies_match_signatures(session: Session, petition_id: int) -> None:
    """The sharded tallies say exactly what the confirmed signature rows say."""
    confirmed = session.exec(
        select(Signature).where(
            Signature.petition_id == petition_id, Signature.status == SignatureStatus.confirmed
        )
    ).all()
    by_country = {
        country: int(total)
        for country, total in session.execute(
            select(SignatureTally.country, func.sum(SignatureTally.count))
            .where(SignatureTally.petition_id == petition_id)
            .group_by(col(SignatureTally.country))
        )
        if total
    }
    assert by_country == dict(Counter(s.country for s in confirmed))
    by_hour = {
        hour.astimezone(UTC): int(total)
        for hour, total in session.execute(
            select(SignatureHourlyTally.hour, func.sum(SignatureHourlyTally.count))
            .where(SignatureHourlyTally.petition_id == petition_id)
            .group_by(col(SignatureHourlyTally.hour))
        )
        if total
    }
    expected_hours = Counter(
        s.confirmed_at.replace(minute=0, second=0, microsecond=0)
        for s in confirmed
        if s.confirmed_at
    )
    assert by_hour == dict(expected_hours)


def _all_at_once(count: int, action: Any) -> list[httpx.Response]:
    barrier = threading.Barrier(count)

    def run(i: int) -> httpx.Response:
        with httpx.Client(timeout=60) as http:
            barrier.wait()
            response: httpx.Response = action(http, i)
            return response

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


# --- the manage link and page ----------------------------------------------------------------


def test_every_email_to_a_signer_carries_a_manage_link_and_opening_it_changes_nothing(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Any
) -> None:
    petition = make_petition(session)
    data = signer(email="olena@example.org", country="UA", postcode="01001", consent_updates=True)
    assert (
        client.post(f"/api/v1/petitions/{petition.slug}/signatures", json=data).status_code == 202
    )
    outbox()
    [confirmation] = smtp.wait_for(1)
    link = manage_link(confirmation)
    assert link.startswith("http://testserver/signatures/manage/")
    assert link.endswith("?lang=en")
    assert f'href="{link}"' in html_of(confirmation)  # the HTML part carries it too
    assert "/signatures/confirm/" not in link

    # Opening it (as a mail scanner does) only shows: the signature stays pending.
    page = client.get(link)
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "noindex" in page.headers["x-robots-tag"]
    for shown in (petition.translations["en"]["title"], "Olena Kovalenko", "olena@example.org"):
        assert shown in page.text
    assert "Ukraine" in page.text and "01001" in page.text
    assert "Waiting for confirmation" in page.text
    token = manage_token_of(link)
    for action in ("withdraw", "consent/withdraw", "export"):
        assert f'action="/signatures/manage/{token}/{action}?lang=en"' in page.text
    assert page.text.count('<form method="post"') == 3
    stored = signature_by_email(session, "olena@example.org")
    assert stored.status == SignatureStatus.pending
    assert stored.consent_updates is True and stored.withdrawn_at is None

    # Confirmed: the page says so, GET again changes nothing, the count is 1.
    assert client.post(confirm_link(confirmation)).status_code == 200
    page = client.get(link)
    assert page.status_code == 200 and "Confirmed" in page.text
    assert detail(client, petition.slug)["signature_count"] == 1
    assert signature_by_email(session, "olena@example.org").status == SignatureStatus.confirmed

    # The "already signed" e-mail links to the same page.
    smtp.clear()
    client.post(f"/api/v1/petitions/{petition.slug}/signatures", json=data)
    outbox()
    [already] = smtp.wait_for(1)
    assert "already signed" in already["Subject"].lower()
    assert manage_token_of(manage_link(already)) and "/signatures/manage/" in html_of(already)
    assert client.get(manage_link(already)).status_code == 200


def test_the_page_is_in_the_signers_language_and_switches_language_in_place(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Any
) -> None:
    petition = make_petition(session, locales=("en", "ko", "uk"))
    link = sign_and_confirm(
        client, smtp, outbox, petition.slug, **signer(name="김민준", country="KR", locale="ko")
    )
    assert link.endswith("?lang=ko")
    token = manage_token_of(link)
    page = client.get(link)
    assert page.status_code == 200
    assert '<html lang="ko">' in page.text
    assert "내 서명 관리" in page.text and "김민준" in page.text
    assert petition.translations["ko"]["title"] in page.text
    assert f'href="/signatures/manage/{token}?lang=uk"' in page.text
    # Without ?lang= the page still speaks the signer's language, not the browser's.
    plain = client.get(f"/signatures/manage/{token}", headers={"Accept-Language": "en"})
    assert '<html lang="ko">' in plain.text
    ukrainian = client.get(f"/signatures/manage/{token}?lang=uk")
    assert "Керування підписом" in ukrainian.text
    assert petition.translations["uk"]["title"] in ukrainian.text


# --- withdrawing -----------------------------------------------------------------------------


def test_withdrawing_lowers_the_count_and_keeps_the_totals_consistent(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Any
) -> None:
    petition = make_petition(session)
    assert petition.id is not None
    links = {
        email: sign_and_confirm(
            client, smtp, outbox, petition.slug, **signer(email=email, country=c)
        )
        for email, c in [("a@example.org", "UA"), ("b@example.org", "KR"), ("c@example.org", "KR")]
    }
    before = detail(client, petition.slug)
    assert before["signature_count"] == 3
    assert before["signatures_by_country"] == [
        {"country": "KR", "count": 2},
        {"country": "UA", "count": 1},
    ]

    # Through the page: a POST form, then back to the page, which says what happened.
    token = manage_token_of(links["b@example.org"])
    response = client.post(f"/signatures/manage/{token}/withdraw?lang=en", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/signatures/manage/{token}?lang=en&done=withdrawn"
    page = client.get(response.headers["location"])
    assert "Your signature has been withdrawn" in page.text
    assert "Withdraw my signature" not in page.text  # no button for what is done
    assert "Stop updates" not in page.text  # consent was never given
    assert "Download my data" in page.text

    after = detail(client, petition.slug)
    assert after["signature_count"] == 2
    assert after["signatures_by_country"] == [
        {"country": "KR", "count": 1},
        {"country": "UA", "count": 1},
    ]
    withdrawn = signature_by_email(session, "b@example.org")
    assert withdrawn.status == SignatureStatus.withdrawn
    assert withdrawn.withdrawn_at is not None and withdrawn.confirmed_at is not None
    assert_tallies_match_signatures(session, petition.id)

    # Through the API: once more is harmless.
    again = client.post("/api/v1/signatures/manage/withdraw", json={"token": token})
    assert again.status_code == 200
    assert again.json() == {
        "status": "already_withdrawn",
        "petition": petition.slug,
        "signature_count": 2,
    }
    other = client.post(
        "/api/v1/signatures/manage/withdraw",
        json={"token": manage_token_of(links["a@example.org"])},
    )
    assert other.json() == {"status": "withdrawn", "petition": petition.slug, "signature_count": 1}
    assert detail(client, petition.slug)["signatures_by_country"] == [{"country": "KR", "count": 1}]
    assert_tallies_match_signatures(session, petition.id)

    # Signing again after withdrawing does not count again: the row (and its unique address)
    # stays, so the signer gets the usual answer and an "already signed" e-mail whose manage
    # link shows the signature as withdrawn.
    smtp.clear()
    resign = client.post(
        f"/api/v1/petitions/{petition.slug}/signatures", json=signer(email="B@example.org")
    )
    assert resign.status_code == 202
    outbox()
    [message] = smtp.wait_for(1)
    assert "already signed" in message["Subject"].lower()
    assert "You withdrew your signature" in client.get(manage_link(message)).text
    assert signature_by_email(session, "b@example.org").status == SignatureStatus.withdrawn
    assert detail(client, petition.slug)["signature_count"] == 1
    assert len(session.exec(select(Signature)).all()) == 3


def test_withdrawing_a_pending_signature_leaves_the_count_alone_and_it_cannot_be_confirmed(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Any
) -> None:
    petition = make_petition(session)
    assert petition.id is not None
    client.post(f"/api/v1/petitions/{petition.slug}/signatures", json=signer(email="p@example.org"))
    outbox()
    [message] = smtp.wait_for(1)
    token = manage_token_of(manage_link(message))
    response = client.post("/api/v1/signatures/manage/withdraw", json={"token": token})
    assert response.json() == {
        "status": "withdrawn",
        "petition": petition.slug,
        "signature_count": 0,
    }
    stored = signature_by_email(session, "p@example.org")
    assert stored.status == SignatureStatus.withdrawn and stored.confirmed_at is None

    # The confirmation link no longer confirms anything.
    client.post(confirm_link(message))
    assert signature_by_email(session, "p@example.org").status == SignatureStatus.withdrawn
    assert detail(client, petition.slug)["signature_count"] == 0
    assert_tallies_match_signatures(session, petition.id)


def test_simultaneous_withdrawals_count_out_once(
    live_server: LiveServer, session: Session, settings: Settings
) -> None:
    petition = make_petition(session)
    assert petition.id is not None
    base = live_server.url
    for i in range(3):
        email = f"racer{i}@example.org"
        assert (
            httpx.post(
                f"{base}/api/v1/petitions/{petition.slug}/signatures",
                json=signer(email=email, country="DE"),
                timeout=10,
            ).status_code
            == 202
        )
        signature = signature_by_email(session, email)
        assert signature.id is not None
        confirm_token = signature_service.confirmation_token(settings, signature_id=signature.id)
        confirmed = httpx.post(
            f"{base}/api/v1/signatures/confirm", json={"token": confirm_token}, timeout=10
        )
        assert confirmed.json()["status"] == "confirmed"
    target = signature_by_email(session, "racer0@example.org")
    assert target.id is not None
    token = rights_service.manage_token(settings, signature_id=target.id)

    responses = _all_at_once(
        20,
        lambda http, i: http.post(
            f"{base}/api/v1/signatures/manage/withdraw", json={"token": token}
        ),
    )

    assert {r.status_code for r in responses} == {200}
    statuses = Counter(r.json()["status"] for r in responses)
    assert statuses == {"withdrawn": 1, "already_withdrawn": 19}
    final = httpx.get(f"{base}/api/v1/petitions/{petition.slug}", timeout=10).json()
    assert final["signature_count"] == 2
    assert final["signatures_by_country"] == [{"country": "DE", "count": 2}]
    assert_tallies_match_signatures(session, petition.id)


def test_a_withdrawal_racing_confirmations_never_leaves_a_count_behind(
    live_server: LiveServer, session: Session, settings: Settings
) -> None:
    petition = make_petition(session)
    assert petition.id is not None
    base = live_server.url
    httpx.post(
        f"{base}/api/v1/petitions/{petition.slug}/signatures",
        json=signer(email="torn@example.org"),
        timeout=10,
    )
    signature = signature_by_email(session, "torn@example.org")
    assert signature.id is not None
    confirm_token = signature_service.confirmation_token(settings, signature_id=signature.id)
    manage_token = rights_service.manage_token(settings, signature_id=signature.id)

    def act(http: httpx.Client, i: int) -> httpx.Response:
        if i % 2:
            return http.post(f"{base}/api/v1/signatures/confirm", json={"token": confirm_token})
        return http.post(f"{base}/api/v1/signatures/manage/withdraw", json={"token": manage_token})

    responses = _all_at_once(16, act)

    # A confirmation that lands after the withdrawal is refused (409), never counted.
    assert {r.status_code for r in responses} <= {200, 409}
    assert signature_by_email(session, "torn@example.org").status == SignatureStatus.withdrawn
    assert (
        httpx.get(f"{base}/api/v1/petitions/{petition.slug}", timeout=10).json()["signature_count"]
        == 0
    )
    assert_tallies_match_signatures(session, petition.id)


# --- consent and download --------------------------------------------------------------------


def test_withdrawing_consent_stops_updates_and_keeps_the_signature(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Any
) -> None:
    petition = make_petition(session)
    links = [
        sign_and_confirm(
            client, smtp, outbox, petition.slug, **signer(email=email, consent_updates=True)
        )
        for email in ("keep@example.org", "gone@example.org")
    ]
    token = manage_token_of(links[0])
    page = client.get(links[0])
    assert "Stop updates" in page.text

    response = client.post(
        f"/signatures/manage/{token}/consent/withdraw?lang=en", follow_redirects=False
    )
    assert response.status_code == 303
    assert "done=consent_withdrawn" in response.headers["location"]
    page = client.get(response.headers["location"])
    assert "you will no longer receive updates" in page.text
    assert "Stop updates" not in page.text
    stored = signature_by_email(session, "keep@example.org")
    assert stored.consent_updates is False
    assert stored.status == SignatureStatus.confirmed
    assert detail(client, petition.slug)["signature_count"] == 2

    again = client.post("/api/v1/signatures/manage/consent/withdraw", json={"token": token})
    assert again.status_code == 200
    assert again.json() == {
        "status": "already_withdrawn",
        "petition": petition.slug,
        "consent_updates": False,
    }

    # Also offered once the signature itself is withdrawn.
    other = manage_token_of(links[1])
    client.post("/api/v1/signatures/manage/withdraw", json={"token": other})
    assert "Stop updates" in client.get(links[1]).text
    response = client.post("/api/v1/signatures/manage/consent/withdraw", json={"token": other})
    assert response.json()["status"] == "consent_withdrawn"
    assert signature_by_email(session, "gone@example.org").consent_updates is False


def test_download_contains_everything_held_and_no_tokens(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Any
) -> None:
    petition = make_petition(session)
    data = signer(
        email="Kim.Minjun@example.org",
        name="Kim Min-jun",
        country="KR",
        postcode="03142",
        consent_updates=True,
    )
    link = sign_and_confirm(client, smtp, outbox, petition.slug, **data)
    token = manage_token_of(link)
    stored = signature_by_email(session, "Kim.Minjun@example.org")

    response = client.post(f"/signatures/manage/{token}/export?lang=en")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="chorus-signature-{stored.id}.json"'
    )
    assert response.headers["cache-control"] == "no-store"
    exported = response.json()
    held = exported["signature"]
    assert held["id"] == stored.id
    assert (held["name"], held["email"], held["country"], held["postcode"]) == (
        "Kim Min-jun",
        "Kim.Minjun@example.org",
        "KR",
        "03142",
    )
    assert held["email_normalised"] == "kim.minjun@example.org"
    assert held["consent_updates"] is True
    assert held["status"] == "confirmed"
    assert held["created_at"] and held["confirmed_at"]
    assert held["withdrawn_at"] is None and held["anonymised_at"] is None
    assert exported["petition"] == {
        "slug": petition.slug,
        "title": petition.translations["en"]["title"],
    }
    assert [(m["kind"], m["status"]) for m in exported["messages"]] == [
        ("signature_confirmation", "sent")
    ]
    assert exported["messages"][0]["sent_at"] is not None
    assert exported["suppression"] is None
    assert token not in response.text and "token" not in response.text
    assert "dedup" not in response.text and "payload" not in response.text

    api = client.post("/api/v1/signatures/manage/export", json={"token": token})
    assert api.status_code == 200
    assert api.headers["content-disposition"].startswith("attachment;")
    assert api.json()["signature"] == held
    assert api.json()["messages"] == exported["messages"]
    # An address that unsubscribed from every update is on the suppression list: that too.
    session.add(
        Suppression(
            email_normalised="kim.minjun@example.org", reason=SuppressionReason.unsubscribed
        )
    )
    session.commit()
    listed = client.post("/api/v1/signatures/manage/export", json={"token": token}).json()
    assert listed["suppression"]["reason"] == "unsubscribed"
    # Downloading changed nothing.
    assert signature_by_email(session, "Kim.Minjun@example.org").status == SignatureStatus.confirmed


# --- bad links -------------------------------------------------------------------------------


def test_bad_and_expired_links_get_a_clear_answer_never_a_500(
    client: TestClient, session: Session, settings: Settings, smtp: Mailbox, outbox: Any
) -> None:
    petition = make_petition(session)
    link = sign_and_confirm(client, smtp, outbox, petition.slug, **signer(email="t@example.org"))
    token = manage_token_of(link)
    signature = signature_by_email(session, "t@example.org")
    assert signature.id is not None

    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    confirm_purpose = make_token(
        settings, purpose=CONFIRM_PURPOSE, subject=signature.id, ttl_seconds=3600
    )
    expired = make_token(
        settings, purpose=rights_service.MANAGE_PURPOSE, subject=signature.id, ttl_seconds=-1
    )
    missing = rights_service.manage_token(settings, signature_id=signature.id + 1000)
    cases = [
        (forged, 400),
        ("garbage", 400),
        ("x" * 300 + ".y", 400),
        ("%00", 400),
        (confirm_purpose, 400),
        (expired, 410),
        (missing, 404),
    ]
    for bad, status in cases:
        for path in ("withdraw", "consent/withdraw", "export"):
            response = client.post(f"/api/v1/signatures/manage/{path}", json={"token": bad})
            assert response.status_code == status, (bad, path)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["status"] == status
        page = client.get(f"/signatures/manage/{bad}")
        assert page.status_code == status, bad
        assert "This link does not work" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        for path in ("withdraw", "consent/withdraw", "export"):
            assert client.post(f"/signatures/manage/{bad}/{path}").status_code == status

    expired_page = client.get(f"/signatures/manage/{expired}?lang=ko")
    assert "링크가 만료되었습니다" in expired_page.text
    assert client.get(f"/signatures/manage/{forged}?lang=uk").text.count("недійсне") == 1
    problem = client.post("/api/v1/signatures/manage/withdraw", json={"token": expired}).json()
    assert problem["type"].endswith("/token-expired")
    missing_field = client.post("/api/v1/signatures/manage/withdraw", json={})
    assert missing_field.status_code == 422

    # Nothing changed on the way.
    stored = signature_by_email(session, "t@example.org")
    assert stored.status == SignatureStatus.confirmed
    assert detail(client, petition.slug)["signature_count"] == 1


# --- anonymisation ---------------------------------------------------------------------------


def _close(session: Session, petition: Petition, **values: Any) -> None:
    stored = session.get(Petition, petition.id)
    assert stored is not None
    for key, value in values.items():
        setattr(stored, key, value)
    session.add(stored)
    session.commit()


def _retention_fixture(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Any
) -> dict[str, Any]:
    """Four petitions: two expired (closed long ago; archived with only closes_at), one open,
    one closed recently. Each has confirmed signatures; the first also a pending and a
    withdrawn one."""
    old = make_petition(session)
    archived = make_petition(session)
    open_ = make_petition(session)
    recent = make_petition(session)
    links: dict[str, str] = {}
    for petition, prefix in ((old, "old"), (archived, "arch"), (open_, "open"), (recent, "recent")):
        for i, country in enumerate(("UA", "KR", "KR")):
            email = f"{prefix}{i}@example.org"
            links[email] = sign_and_confirm(
                client,
                smtp,
                outbox,
                petition.slug,
                **signer(email=email, country=country, postcode="12345", consent_updates=True),
            )
    links["old-withdrawn@example.org"] = sign_and_confirm(
        client, smtp, outbox, old.slug, **signer(email="old-withdrawn@example.org", country="DE")
    )
    client.post(
        "/api/v1/signatures/manage/withdraw",
        json={"token": manage_token_of(links["old-withdrawn@example.org"])},
    )
    # Never confirmed, and its confirmation e-mail still waits in the outbox.
    client.post(
        f"/api/v1/petitions/{old.slug}/signatures", json=signer(email="old-pending@example.org")
    )
    now = utcnow()
    _close(session, old, status=PetitionStatus.closed, closed_at=now - timedelta(days=200))
    _close(
        session,
        archived,
        status=PetitionStatus.archived,
        closed_at=None,
        closes_at=now - timedelta(days=400),
    )
    _close(session, open_, created_at=now - timedelta(days=900))
    _close(session, recent, status=PetitionStatus.closed, closed_at=now - timedelta(days=10))
    return {"old": old, "archived": archived, "open": open_, "recent": recent, "links": links}


def _totals(session: Session, petition_ids: list[int]) -> dict[int, tuple[int, list[Any]]]:
    return {
        pid: (
            signature_service.confirmed_count(session, petition_id=pid),
            signature_service.confirmed_by_country(session, petition_id=pid),
        )
        for pid in petition_ids
    }


def test_anonymisation_removes_personal_data_keeps_totals_and_is_idempotent(
    client: TestClient, session: Session, engine: Engine, smtp: Mailbox, outbox: Any
) -> None:
    world = _retention_fixture(client, session, smtp, outbox)
    old, archived, open_, recent = world["old"], world["archived"], world["open"], world["recent"]
    ids = [old.id, archived.id, open_.id, recent.id]
    totals = _totals(session, ids)
    assert totals[old.id][0] == 3 and totals[archived.id][0] == 3

    # A dry run counts and changes nothing.
    dry = rights_service.anonymise_expired(engine, days=183, dry_run=True)
    assert [(p.slug, p.signatures) for p in dry.petitions] == [(old.slug, 5), (archived.slug, 3)]
    assert (
        session.exec(select(Signature).where(col(Signature.anonymised_at).is_not(None))).all() == []
    )

    report = rights_service.anonymise_expired(engine, days=183, batch_size=2)
    assert [(p.slug, p.signatures) for p in report.petitions] == [(old.slug, 5), (archived.slug, 3)]
    assert report.signatures == 8
    assert report.messages > 0

    for petition in (old, archived):
        rows = session.exec(select(Signature).where(Signature.petition_id == petition.id)).all()
        assert rows
        for row in rows:
            assert (row.name, row.email, row.postcode) == ("", "", None)
            assert row.email_normalised == f"anonymised:{row.id}"
            assert row.consent_updates is False
            assert row.anonymised_at is not None
            assert row.country in ("UA", "KR", "DE", "GB")
            assert row.created_at is not None
        statuses = Counter(row.status for row in rows)
        if petition is old:
            assert statuses == {"confirmed": 3, "pending": 1, "withdrawn": 1}
            assert all(r.confirmed_at for r in rows if r.status != SignatureStatus.pending)
        assert_tallies_match_signatures(session, petition.id)
    for petition in (open_, recent):
        rows = session.exec(select(Signature).where(Signature.petition_id == petition.id)).all()
        assert all(r.anonymised_at is None and r.email and r.name and r.postcode for r in rows)
    # Counts and per-country totals are exactly what they were.
    assert _totals(session, ids) == totals
    assert detail(client, old.slug)["signature_count"] == 3

    # Their messages lose their recipient; other petitions' keep theirs.
    messages = session.exec(select(OutboxMessage)).all()
    anonymised_ids = {
        s.id
        for s in session.exec(select(Signature).where(col(Signature.anonymised_at).is_not(None)))
    }
    for message in messages:
        mine = message.payload.get("signature_id") in anonymised_ids
        assert (message.recipient is None) == mine, message
        assert message.status != OutboxStatus.pending or not mine
    assert not any(m.recipient and m.recipient.startswith("old") for m in messages)
    assert any(m.recipient == "open0@example.org" for m in messages)

    # Running it again changes nothing.
    before = [(s.id, s.anonymised_at) for s in session.exec(select(Signature))]
    again = rights_service.anonymise_expired(engine, days=183)
    assert again.signatures == 0 and again.messages == 0
    assert [(s.id, s.anonymised_at) for s in session.exec(select(Signature))] == before

    # A shorter retention reaches the recent closure, never the open petition.
    shorter = rights_service.anonymise_expired(engine, days=5)
    assert [(p.slug, p.signatures) for p in shorter.petitions if p.signatures] == [(recent.slug, 3)]
    assert all(
        r.anonymised_at is None
        for r in session.exec(select(Signature).where(Signature.petition_id == open_.id))
    )


def test_the_manage_page_of_an_anonymised_signature_says_the_data_was_removed(
    client: TestClient, session: Session, engine: Engine, smtp: Mailbox, outbox: Any
) -> None:
    world = _retention_fixture(client, session, smtp, outbox)
    rights_service.anonymise_expired(engine, days=183)
    link = world["links"]["old1@example.org"]
    token = manage_token_of(link)

    page = client.get(link)
    assert page.status_code == 200
    assert "The personal data of this signature was removed on" in page.text
    assert "old1@example.org" not in page.text and "12345" not in page.text
    assert "South Korea" in page.text or "Korea" in page.text
    assert '<form method="post"' not in page.text

    for path in ("withdraw", "consent/withdraw"):
        refused = client.post(f"/api/v1/signatures/manage/{path}", json={"token": token})
        assert refused.status_code == 409
        assert refused.json()["type"].endswith("/signature-anonymised")
        assert client.post(f"/signatures/manage/{token}/{path}").status_code == 409
    exported = client.post("/api/v1/signatures/manage/export", json={"token": token}).json()
    assert exported["signature"]["name"] == "" and exported["signature"]["email"] == ""
    assert exported["signature"]["anonymised_at"] is not None
    assert exported["messages"] == []
    assert detail(client, world["old"].slug)["signature_count"] == 3


def test_chorus_anonymise_dry_run_and_real_run(
    client: TestClient,
    session: Session,
    settings: Settings,
    smtp: Mailbox,
    outbox: Any,
    tmp_path: Any,
) -> None:
    world = _retention_fixture(client, session, smtp, outbox)
    old, archived = world["old"], world["archived"]
    env = clean_env(tmp_path, DATABASE_URL=settings.DATABASE_URL)

    dry = run_chorus("anonymise", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"{old.slug}: would anonymise 5 signature(s)" in dry.stdout
    assert f"{archived.slug}: would anonymise 3 signature(s)" in dry.stdout
    assert "nothing was changed" in dry.stdout
    assert (
        session.exec(select(Signature).where(col(Signature.anonymised_at).is_not(None))).all() == []
    )

    real = run_chorus("anonymise", env=env)
    assert real.returncode == 0, real.stderr
    assert f"{old.slug}: anonymised 5 signature(s)" in real.stdout
    assert "anonymised 8 signature(s) in all" in real.stdout
    anonymised = session.exec(select(Signature).where(col(Signature.anonymised_at).is_not(None)))
    assert {s.petition_id for s in anonymised} == {old.id, archived.id}
    assert detail(client, old.slug)["signature_count"] == 3

    again = run_chorus("anonymise", env=env)
    assert again.returncode == 0, again.stderr
    assert "anonymised 0 signature(s) in all" in again.stdout

    # --days reaches the recent closure.
    shorter = run_chorus("anonymise", "--days", "5", env=env)
    assert f"{world['recent'].slug}: anonymised 3 signature(s)" in shorter.stdout
    assert run_chorus("anonymise", "--days", "0", env=env).returncode == 2


def test_anonymisation_skips_closed_petitions_without_any_date(
    session: Session, engine: Engine
) -> None:
    petition = make_petition(session)
    _close(session, petition, status=PetitionStatus.closed, closed_at=None, closes_at=None)
    assert rights_service.anonymise_expired(engine, days=1).petitions == []
    assert (
        rights_service.expired_petitions(session, cutoff=datetime.now(UTC) + timedelta(days=1))
        == []
    )


@pytest.mark.parametrize("locale", ["en", "ko", "uk"])
def test_every_rights_string_is_translated(locale: str) -> None:
    from app.core.i18n import LOCALES_DIR

    english = json.loads((LOCALES_DIR / "rights.en.json").read_text("utf-8"))
    mine = json.loads((LOCALES_DIR / f"rights.{locale}.json").read_text("utf-8"))
    assert set(mine) == set(english)
    assert all(value.strip() for value in mine.values())


def test_a_withdrawn_signature_cannot_be_confirmed_afterwards(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Callable[[], int]
) -> None:
    petition = make_petition(session)
    client.post(f"/api/v1/petitions/{petition.slug}/signatures", json=signer())
    outbox()
    message = smtp.wait_for(1)[0]
    confirm = confirm_link(message)
    manage = next(
        line.strip() for line in body_text(message).splitlines() if "/signatures/manage/" in line
    )
    manage_token = manage.split("/signatures/manage/", 1)[1].split("?", 1)[0]
    assert (
        client.post("/api/v1/signatures/manage/withdraw", json={"token": manage_token}).status_code
        == 200
    )
    response = client.post("/api/v1/signatures/confirm", json={"token": token_of(confirm)})
    assert response.status_code == 409
    assert response.json()["title"] == "This signature was withdrawn"
    page = client.post(confirm)
    assert page.status_code == 409 and "withdrawn" in page.text
