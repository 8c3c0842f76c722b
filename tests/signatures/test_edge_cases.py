"""Odd but real input: names and addresses mail servers care about, hostile tokens and slugs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, select

from app.core.addresses import normalise_email
from app.core.db import utcnow
from app.petitions.models import Petition, PetitionStatus
from app.signatures.models import Signature
from tests.conftest import Mailbox, confirm_link, token_of
from tests.factories import make_petition, signer


def test_any_valid_name_or_address_gets_its_email_and_none_blocks_the_others(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Callable[[], int]
) -> None:
    petition = make_petition(session)
    people = [
        ("Seán O’Brien", "sean@example.org"),
        ("Smith, John", "john@example.org"),
        ("김민준", "minjun@example.org"),
        ("Jörg Müller", "jorg@bücher.example"),
        ("Mary-Jane D'Souza", "mj@example.org"),
    ]
    for name, email in people:
        response = client.post(
            f"/api/v1/petitions/{petition.slug}/signatures", json=signer(name=name, email=email)
        )
        assert response.status_code == 202, response.text
    assert outbox() == len(people)
    messages = smtp.wait_for(len(people))
    delivered = {
        m["To"].addresses[0].display_name: m["To"].addresses[0].addr_spec for m in messages
    }
    assert delivered["Seán O’Brien"] == "sean@example.org"
    assert delivered["Smith, John"] == "john@example.org"
    assert delivered["김민준"] == "minjun@example.org"
    assert delivered["Jörg Müller"] == "jorg@xn--bcher-kva.example"  # IDNA, as servers need


def test_an_address_needing_smtputf8_is_refused_at_signing(
    client: TestClient, session: Session
) -> None:
    petition = make_petition(session)
    response = client.post(
        f"/api/v1/petitions/{petition.slug}/signatures", json=signer(email="jörg@example.org")
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "email"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("J.Smith+news@gmail.com", "jsmith@googlemail.com", True),
        ("Anna+x@Outlook.com", "anna@outlook.com", True),
        ("+alice@example.org", "+bob@example.org", False),
        ("a+x@corp.example", "a@corp.example", False),
        ("j.smith@corp.example", "jsmith@corp.example", False),
        ("KIM@Example.org", "kim@example.org", True),
    ],
)
def test_email_normalisation(a: str, b: str, same: bool) -> None:
    assert (normalise_email(a) == normalise_email(b)) is same


@pytest.mark.parametrize(
    "token", [r"\ud800.abc", r"\u00e9.\u00e9", "a" * 500, ".", "x.", "%00.%00", r"\u0000.a"]
)
def test_hostile_tokens_are_refused_cleanly(client: TestClient, engine: object, token: str) -> None:
    # Sent as raw JSON, escapes included, as a hostile client would.
    response = client.post(
        "/api/v1/signatures/confirm",
        content='{"token": "' + token + '"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("slug", ["a%00b", "A-B", "x" * 200, "..%2f..", "%E2%98%83"])
def test_odd_slugs_are_not_found(client: TestClient, engine: object, slug: str) -> None:
    assert client.get(f"/api/v1/petitions/{slug}").status_code == 404
    assert client.get(f"/petitions/{slug}").status_code == 404
    assert client.post(f"/api/v1/petitions/{slug}/signatures", json=signer()).status_code == 404
    assert client.get(f"/api/v1/campaigns/{slug}/donations/totals").status_code == 404


def test_a_signature_accepted_before_closing_can_be_confirmed_after(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Callable[[], int]
) -> None:
    petition = make_petition(session)
    client.post(f"/api/v1/petitions/{petition.slug}/signatures", json=signer())
    outbox()
    token = token_of(confirm_link(smtp.wait_for(1)[0]))
    session.execute(
        update(Petition).values(
            status=PetitionStatus.closed, closes_at=utcnow() - timedelta(minutes=1)
        )
    )
    session.commit()
    response = client.post("/api/v1/signatures/confirm", json={"token": token})
    assert response.status_code == 200
    assert response.json()["signature_count"] == 1


def test_an_overlong_form_field_is_reported_beside_the_field(
    client: TestClient, session: Session
) -> None:
    petition = make_petition(session)
    response = client.post(
        f"/petitions/{petition.slug}/sign",
        data={"name": "K" * 5000, "email": "k@example.org", "country": "KR"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="e-name"' in response.text
    assert session.exec(select(Signature)).all() == []


def test_language_links_on_a_form_error_page_lead_back_to_the_petition(
    client: TestClient, session: Session
) -> None:
    petition = make_petition(session, locales=("en", "ko"))
    response = client.post(f"/petitions/{petition.slug}/sign", data={"name": "", "locale": "en"})
    assert f'href="/petitions/{petition.slug}?lang=ko"' in response.text
    assert client.get(f"/petitions/{petition.slug}?lang=ko").status_code == 200


def test_huge_bodies_are_refused_before_being_read(client: TestClient, session: Session) -> None:
    petition = make_petition(session)
    huge = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = client.post(
        f"/api/v1/petitions/{petition.slug}/signatures",
        content=huge,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


@pytest.mark.parametrize("name", [r"Kim\u0000Lee", r"Kim \ud950"])
def test_text_the_database_cannot_store_is_a_422(
    client: TestClient, admin: Any, name: str, migrated_url: str
) -> None:
    # Token names are free text. Lone surrogates fit no database; NUL fits SQLite but not
    # PostgreSQL. Either way: a clear 422 where it cannot be stored, never a 500.
    response = client.post(
        "/api/v1/admin/tokens",
        content='{"name": "' + name + '"}',
        headers={**admin.headers, "content-type": "application/json"},
    )
    if "u0000" in name and migrated_url.startswith("sqlite"):
        assert response.status_code == 201
        return
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
