"""Signing through the JSON API, the confirmation e-mail, and confirming."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.core.db import utcnow
from app.core.tokens import make_token
from app.petitions.models import PetitionStatus
from app.signatures.models import Signature, SignatureStatus
from app.signatures.service import CONFIRM_PURPOSE
from tests.conftest import Mailbox, body_text, confirm_link, token_of
from tests.factories import make_petition, signer


def sign(client: TestClient, slug: str, **data: object):
    return client.post(f"/api/v1/petitions/{slug}/signatures", json=data)


def count(client: TestClient, slug: str) -> int:
    response = client.get(f"/api/v1/petitions/{slug}")
    assert response.status_code == 200
    return int(response.json()["signature_count"])


def test_sign_confirm_by_email_link_counts_once(
    client: TestClient, session: Session, smtp: Mailbox, outbox
) -> None:
    petition = make_petition(session, goal=500)
    data = signer(email="Olena.K@Example.org", consent_updates=True)

    response = sign(client, petition.slug, **data)
    assert response.status_code == 202
    assert response.json() == {"status": "pending_confirmation"}
    assert count(client, petition.slug) == 0  # not before confirmation

    assert outbox() == 1
    [message] = smtp.wait_for(1)
    assert message["To"].addresses[0].addr_spec == "Olena.K@example.org"
    assert "confirm" in message["Subject"].lower()
    assert message.get_body(preferencelist=("html",)) is not None
    link = confirm_link(message)
    assert link.startswith("http://testserver/signatures/confirm/")

    # Following the link (as a mail scanner would) changes nothing.
    page = client.get(link)
    assert page.status_code == 200
    assert '<form method="post"' in page.text
    assert count(client, petition.slug) == 0

    confirmed = client.post(link)
    assert confirmed.status_code == 200
    assert "confirmed" in confirmed.text.lower()
    assert count(client, petition.slug) == 1

    # Confirming again is harmless and does not count twice.
    again = client.post("/api/v1/signatures/confirm", json={"token": token_of(link)})
    assert again.status_code == 200
    assert again.json() == {
        "status": "already_confirmed",
        "petition": petition.slug,
        "signature_count": 1,
    }
    assert count(client, petition.slug) == 1

    stored = session.exec(select(Signature)).one()
    assert stored.status == SignatureStatus.confirmed
    assert stored.consent_updates is True
    assert stored.confirmed_at is not None


def test_api_confirm(client: TestClient, session: Session, smtp: Mailbox, outbox) -> None:
    petition = make_petition(session)
    assert sign(client, petition.slug, **signer(country="kr")).status_code == 202
    outbox()
    token = token_of(confirm_link(smtp.wait_for(1)[0]))
    response = client.post("/api/v1/signatures/confirm", json={"token": token})
    assert response.status_code == 200
    assert response.json() == {
        "status": "confirmed",
        "petition": petition.slug,
        "signature_count": 1,
    }
    detail = client.get(f"/api/v1/petitions/{petition.slug}").json()
    assert detail["signatures_by_country"] == [{"country": "KR", "count": 1}]
    assert detail["goal"] == 100


def test_same_person_gets_same_response_and_an_already_signed_email(
    client: TestClient, session: Session, smtp: Mailbox, outbox
) -> None:
    petition = make_petition(session)
    first = sign(client, petition.slug, **signer(email="john.smith@gmail.com"))
    outbox()
    client.post(confirm_link(smtp.wait_for(1)[0]))
    smtp.clear()

    # The same Gmail inbox, written differently: dots, a +tag, upper case, googlemail.
    second = sign(
        client,
        petition.slug,
        **signer(email="J.O.H.N.Smith+petitions@GoogleMail.com", name="Someone Else"),
    )
    assert second.status_code == first.status_code == 202
    assert second.json() == first.json()
    assert second.headers.get("content-length") == first.headers.get("content-length")

    outbox()
    [message] = smtp.wait_for(1)
    assert "already signed" in message["Subject"].lower()
    assert "/signatures/confirm/" not in body_text(message)
    assert count(client, petition.slug) == 1
    assert len(session.exec(select(Signature)).all()) == 1


def test_signing_again_before_confirming_resends_the_link_a_bounded_number_of_times(
    client: TestClient, session: Session, smtp: Mailbox, outbox, settings
) -> None:
    petition = make_petition(session)
    data = signer()
    for _ in range(settings.MAX_CONFIRMATION_SENDS + 4):
        assert sign(client, petition.slug, **data).status_code == 202
    outbox()
    messages = smtp.wait_for(settings.MAX_CONFIRMATION_SENDS)
    assert len(messages) == settings.MAX_CONFIRMATION_SENDS
    assert all("/signatures/confirm/" in body_text(m) for m in messages)
    # Any of the links confirms the one signature.
    client.post(confirm_link(messages[-1]))
    assert count(client, petition.slug) == 1


@pytest.mark.parametrize(
    ("field", "value", "error_type"),
    [
        ("email", "not-an-address", "email_invalid"),
        ("email", "someone@", "email_invalid"),
        ("country", "XX", "country_invalid"),
        ("country", "Korea", "country_invalid"),
        ("name", "", "name_missing"),
        ("name", '=HYPERLINK("http://evil.example")', "name_formula"),
        ("name", "+Kim", "name_formula"),
        ("name", "-Kim", "name_formula"),
        ("name", "@Kim", "name_formula"),
        ("name", "\tKim", "name_formula"),
        ("name", "\rKim", "name_formula"),
        ("name", "K" * 101, "name_too_long"),
        ("name", "Kim <script>", "name_characters"),
        ("postcode", "<b>", "postcode_invalid"),
    ],
)
def test_bad_input_is_a_problem_with_the_field_named(
    client: TestClient, session: Session, field: str, value: str, error_type: str
) -> None:
    petition = make_petition(session)
    response = sign(client, petition.slug, **signer(**{field: value}))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 422
    assert problem["title"]
    assert [(e["field"], e["type"]) for e in problem["errors"]] == [(field, error_type)]
    assert session.exec(select(Signature)).all() == []


def test_names_in_korean_and_ukrainian_are_accepted(client: TestClient, session: Session) -> None:
    petition = make_petition(session)
    for name in ("김민준", "Олена Ковальчук", "Seán O’Brien", "Anne-Marie d'Arc"):
        assert sign(client, petition.slug, **signer(name=name)).status_code == 202
    names = {s.name for s in session.exec(select(Signature)).all()}
    assert names == {"김민준", "Олена Ковальчук", "Seán O’Brien", "Anne-Marie d'Arc"}


def test_missing_and_unknown_fields(client: TestClient, session: Session) -> None:
    petition = make_petition(session)
    response = client.post(
        f"/api/v1/petitions/{petition.slug}/signatures",
        json={"name": "Kim", "country": "KR", "admin": True},
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"email", "admin"}
    not_json = client.post(
        f"/api/v1/petitions/{petition.slug}/signatures",
        content=b"{",
        headers={"content-type": "application/json"},
    )
    assert not_json.status_code == 422
    assert not_json.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("status", "expected"), [(PetitionStatus.closed, 409), (PetitionStatus.draft, 404)]
)
def test_closed_and_draft_petitions_refuse_signatures(
    client: TestClient, session: Session, status: PetitionStatus, expected: int
) -> None:
    petition = make_petition(session, status=status)
    response = sign(client, petition.slug, **signer())
    assert response.status_code == expected
    assert response.headers["content-type"].startswith("application/problem+json")
    assert session.exec(select(Signature)).all() == []


def test_petition_outside_its_dates_refuses_signatures(
    client: TestClient, session: Session
) -> None:
    later = make_petition(session, opens_at=utcnow() + timedelta(days=1))
    past = make_petition(session, closes_at=utcnow() - timedelta(seconds=1))
    assert sign(client, later.slug, **signer()).json()["type"].endswith("petition-not-open")
    assert sign(client, past.slug, **signer()).json()["type"].endswith("petition-closed")


def test_unknown_petition_is_a_404_problem(client: TestClient, engine) -> None:
    response = sign(client, "no-such-petition", **signer())
    assert response.status_code == 404
    assert response.json()["title"] == "Petition not found"


def test_tokens_are_checked(
    client: TestClient, session: Session, settings, smtp: Mailbox, outbox
) -> None:
    petition = make_petition(session)
    sign(client, petition.slug, **signer())
    outbox()
    token = token_of(confirm_link(smtp.wait_for(1)[0]))
    signature_id = session.exec(select(Signature)).one().id
    assert signature_id is not None

    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    other_purpose = make_token(
        settings, purpose="manage-signature", subject=signature_id, ttl_seconds=3600
    )
    expired = make_token(settings, purpose=CONFIRM_PURPOSE, subject=signature_id, ttl_seconds=-1)
    for bad, status in [(forged, 400), ("garbage", 400), (other_purpose, 400), (expired, 410)]:
        response = client.post("/api/v1/signatures/confirm", json={"token": bad})
        assert response.status_code == status, bad
        assert response.headers["content-type"].startswith("application/problem+json")
    page = client.post(f"/signatures/confirm/{expired}")
    assert page.status_code == 410
    assert "expired" in page.text
    assert count(client, petition.slug) == 0


def test_confirmation_email_is_in_the_signers_language(
    client: TestClient, session: Session, smtp: Mailbox, outbox
) -> None:
    petition = make_petition(session, locales=("en", "ko", "uk"))
    sign(client, petition.slug, **signer(email="kim@example.org", locale="ko"))
    client.post(
        f"/api/v1/petitions/{petition.slug}/signatures",
        json=signer(email="olena@example.org"),
        headers={"Accept-Language": "uk-UA,uk;q=0.9,en;q=0.5"},
    )
    sign(client, petition.slug, **signer(email="someone@example.org", locale="fr"))
    outbox()
    smtp.wait_for(3)
    [korean] = smtp.to("kim@example.org")
    assert "서명" in korean["Subject"]
    assert "lang=ko" in confirm_link(korean)
    [ukrainian] = smtp.to("olena@example.org")
    assert "підпис" in ukrainian["Subject"].lower()
    [fallback] = smtp.to("someone@example.org")
    assert "confirm" in fallback["Subject"].lower()
