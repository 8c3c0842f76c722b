"""OSDI's record signature helper: signs through the signing API's own path (double opt-in,
abuse controls, one signature per person) and answers in OSDI's shape."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.abuse.models import AbuseRule, RuleAction, RuleKind
from app.petitions.models import PetitionStatus
from app.signatures.models import Signature, SignatureStatus
from tests.conftest import Account, Mailbox, confirm_link
from tests.factories import make_petition
from tests.osdi.helpers import CURIE, campaign_slug, read


def osdi_person(**overrides: Any) -> dict[str, Any]:
    person: dict[str, Any] = {
        "identifiers": ["foreign_system:1"],
        "given_name": "Olena",
        "family_name": "Kovalenko",
        "email_addresses": [
            {"address": "old@example.org", "primary": False},
            {"address": "Olena.K@example.org", "primary": True, "status": "subscribed"},
        ],
        "postal_addresses": [{"primary": True, "postal_code": "01001", "country": "ua"}],
        "phone_numbers": [{"number": "380441234567", "primary": True}],  # not kept
        "languages_spoken": ["fr", "uk-UA"],
    }
    person.update(overrides)
    return person


def record(client: TestClient, account: Account, slug: str, person: dict[str, Any]) -> Any:
    token = account.headers["Authorization"].removeprefix("Bearer ")
    return client.post(
        f"/api/osdi/v1/petitions/{slug}/signatures",
        json={"person": person, "comments": "Not kept", "triggers": {}},
        headers={"OSDI-API-Token": token},
    )


def test_the_helper_signs_with_double_opt_in_and_the_signature_appears_once_confirmed(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Any, make_account: Any
) -> None:
    petition = make_petition(session, locales=("en", "uk"))
    account: Account = make_account("organiser", [campaign_slug(session, petition)])
    # The petition links to its helper; a client follows that link.
    helper = read(client, account, f"http://testserver/api/osdi/v1/petitions/{petition.slug}")[
        "_links"
    ]["osdi:record_signature_helper"]["href"]

    response = client.post(
        helper,
        json={"person": osdi_person()},
        headers={"OSDI-API-Token": account.headers["Authorization"].removeprefix("Bearer ")},
    )
    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == "application/hal+json"
    base = f"http://testserver/api/osdi/v1/petitions/{petition.slug}"
    assert response.json() == {
        "status": "pending_confirmation",
        "_links": {
            "curies": [CURIE],
            "osdi:petition": {"href": base},
            "osdi:signatures": {"href": f"{base}/signatures"},
        },
    }
    stored = session.exec(select(Signature)).one()
    assert (stored.name, stored.email, stored.country, stored.postcode) == (
        "Olena Kovalenko",
        "Olena.K@example.org",
        "UA",
        "01001",
    )
    assert stored.status == SignatureStatus.pending
    assert stored.consent_updates is True and stored.locale == "uk"
    # Pending: not a signature yet, for OSDI either.
    signatures = read(client, account, f"{base}/signatures")
    assert signatures["total_records"] == 0

    assert outbox() == 1
    [message] = smtp.wait_for(1)
    assert message["To"].addresses[0].addr_spec == "Olena.K@example.org"
    assert message["Subject"].startswith("Будь ласка, підтвердьте")  # in a language they speak
    assert client.post(confirm_link(message)).status_code == 200

    signatures = read(client, account, f"{base}/signatures")
    [signature] = signatures["_embedded"]["osdi:signatures"]
    person = read(client, account, signature["_links"]["osdi:person"]["href"])
    assert person["given_name"] == "Olena Kovalenko"
    assert person["email_addresses"] == [
        {"address": "Olena.K@example.org", "primary": True, "status": "subscribed"}
    ]
    assert person["postal_addresses"] == [
        {"primary": True, "postal_code": "01001", "country": "UA"}
    ]
    assert person["languages_spoken"] == ["uk"]

    # Again with the same person: the same answer, no second signature, an "already signed"
    # e-mail (as the signing API does).
    smtp.clear()
    again = record(client, account, petition.slug, osdi_person())
    assert again.status_code == 202 and again.json() == response.json()
    assert len(session.exec(select(Signature)).all()) == 1
    outbox()
    [repeat] = smtp.wait_for(1)
    assert repeat["Subject"].startswith("Ви вже підписали")


def test_the_helper_holds_what_the_abuse_controls_hold_with_the_same_answer(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Any, admin: Account
) -> None:
    petition = make_petition(session)
    session.add(AbuseRule(kind=RuleKind.domain, value="spam.example", action=RuleAction.block))
    session.commit()
    person = osdi_person(email_addresses=[{"address": "bot@spam.example"}])
    response = record(client, admin, petition.slug, person)
    assert response.status_code == 202
    assert response.json()["status"] == "pending_confirmation"
    stored = session.exec(select(Signature)).one()
    assert (stored.status, stored.held_reason) == (SignatureStatus.suspect, "blocked")
    assert outbox() == 0 and smtp.messages == []


def test_the_helper_names_bad_fields_by_their_osdi_path(
    client: TestClient, session: Session, admin: Account
) -> None:
    petition = make_petition(session)
    cases = {
        "person.given_name": osdi_person(given_name="=cmd()", family_name=None),
        "person.email_addresses.1.address": osdi_person(
            email_addresses=[{"address": "a@example.org"}, {"address": "nope", "primary": True}]
        ),
        "person.postal_addresses": osdi_person(postal_addresses=[]),
        "person.postal_addresses.0.country": osdi_person(postal_addresses=[{"postal_code": "1"}]),
        "person.postal_addresses.1.postal_code": osdi_person(
            postal_addresses=[
                {"country": "KR"},
                {"country": "UA", "postal_code": "?", "primary": True},
            ]
        ),
        "person.email_addresses": osdi_person(email_addresses=[]),
    }
    for field, person in cases.items():
        response = record(client, admin, petition.slug, person)
        assert response.status_code == 422, (field, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert session.exec(select(Signature)).all() == []


def test_the_helper_refuses_closed_and_unknown_petitions_and_other_campaigns(
    client: TestClient, session: Session, admin: Account, make_account: Any
) -> None:
    closed = make_petition(session, status=PetitionStatus.closed)
    assert record(client, admin, closed.slug, osdi_person()).status_code == 409
    assert record(client, admin, "no-such-petition", osdi_person()).status_code == 404
    ours, theirs = make_petition(session), make_petition(session)
    organiser: Account = make_account("organiser", [campaign_slug(session, ours)])
    assert record(client, organiser, theirs.slug, osdi_person()).status_code == 404
    anonymous = client.post(
        f"/api/osdi/v1/petitions/{ours.slug}/signatures", json={"person": osdi_person()}
    )
    assert anonymous.status_code == 401
    assert session.exec(select(Signature)).all() == []
