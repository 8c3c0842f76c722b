"""The OSDI read API: from the entry point to petitions, signatures and people, by their links;
paging; who may read what; withdrawn and anonymised signatures."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from app.core.config import Settings
from app.core.db import utcnow
from app.core.lanes import is_admin_path
from app.email.models import SuppressionReason
from app.email.service import suppress
from app.petitions.models import Petition, PetitionStatus
from app.rights import service as rights_service
from app.signatures.models import Signature
from tests.conftest import Account, Mailbox
from tests.factories import make_petition, signer
from tests.osdi.helpers import (
    AEP,
    AEP_FIELDS,
    COLLECTION,
    CURIE,
    EMAIL_ADDRESS,
    EMAIL_STATUSES,
    PERSON,
    PETITION,
    POSTAL_ADDRESS,
    SIGNATURE,
    campaign_slug,
    link_names,
    osdi_fields,
    read,
    sign_and_confirm,
)


def test_a_client_follows_links_from_the_entry_point_to_a_petition_its_signatures_and_a_person(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Any, make_account: Any
) -> None:
    petition = make_petition(session, locales=("en", "uk"))
    sign_and_confirm(
        client,
        smtp,
        outbox,
        petition.slug,
        **signer(
            name="Olena Kovalenko",
            email="olena@example.org",
            postcode="01001",
            locale="uk",
            consent_updates=True,
        ),
    )
    sign_and_confirm(
        client, smtp, outbox, petition.slug, **signer(name="Kim Min-jun", country="KR")
    )
    account: Account = make_account("organiser", [campaign_slug(session, petition)])

    aep = read(client, account, "http://testserver" + AEP)
    osdi_fields(aep, AEP_FIELDS, AEP_FIELDS)
    assert aep["osdi_version"] == "1.1" and aep["max_pagesize"] == 100
    assert aep["_links"]["curies"] == [CURIE]
    assert aep["_links"]["self"]["href"] == "http://testserver/api/osdi/v1/"
    assert {"osdi:petitions", "osdi:people"} <= link_names(aep)

    petitions = read(client, account, aep["_links"]["osdi:petitions"]["href"])
    osdi_fields(petitions, COLLECTION, COLLECTION)
    assert (petitions["total_records"], petitions["total_pages"], petitions["page"]) == (1, 1, 1)
    assert petitions["_links"]["curies"] == [CURIE]
    [listed] = petitions["_embedded"]["osdi:petitions"]
    assert petitions["_links"]["osdi:petitions"] == [listed["_links"]["self"]]

    one = read(client, account, listed["_links"]["self"]["href"])
    osdi_fields(one, PETITION, PETITION)
    assert one["_links"]["curies"] == [CURIE]
    assert {k: v for k, v in one.items() if k != "_links"} == {
        k: v for k, v in listed.items() if k != "_links"
    }
    assert one["identifiers"] == [f"chorus:{petition.slug}"]
    assert one["origin_system"] == "Chorus"
    assert one["title"] == petition.text("en")["title"]
    assert one["summary"] == "Summary [en]"
    assert one["petition_text"] == "First paragraph [en].\n\nSecond paragraph."
    assert one["description"] == "<p>First paragraph [en].</p><p>Second paragraph.</p>"
    assert one["browser_url"] == f"http://testserver/petitions/{petition.slug}"
    assert one["total_signatures"] == 2
    assert one["target"] == [{"name": "Minister of Tests, Minister, Ministry of Tests"}]
    assert one["created_date"].endswith("Z")
    links = one["_links"]
    assert {"self", "osdi:signatures", "osdi:record_signature_helper"} <= set(links)
    assert links["osdi:record_signature_helper"] == links["osdi:signatures"]

    signatures = read(client, account, links["osdi:signatures"]["href"])
    osdi_fields(signatures, COLLECTION, COLLECTION)
    assert signatures["total_records"] == 2
    first, second = signatures["_embedded"]["osdi:signatures"]
    for document in (first, second):
        osdi_fields(document, SIGNATURE, SIGNATURE - {"comments", "referrer_data"})
        assert {"self", "osdi:petition", "osdi:person"} <= link_names(document)
        assert document["_links"]["osdi:petition"] == links["self"]
    assert read(client, account, first["_links"]["self"]["href"]) == {
        **first,
        "_links": {**first["_links"], "curies": [CURIE]},
    }

    person = read(client, account, first["_links"]["osdi:person"]["href"])
    filled = {
        "identifiers",
        "given_name",
        "email_addresses",
        "postal_addresses",
        "languages_spoken",
    }
    osdi_fields(person, PERSON, filled)
    assert person["given_name"] == "Olena Kovalenko"
    assert "family_name" not in person  # one name, never a guessed split
    [address] = person["email_addresses"]
    assert set(address) <= EMAIL_ADDRESS and address["status"] in EMAIL_STATUSES
    assert address == {"address": "olena@example.org", "primary": True, "status": "subscribed"}
    [postal] = person["postal_addresses"]
    assert set(postal) <= POSTAL_ADDRESS
    assert postal == {"primary": True, "postal_code": "01001", "country": "UA"}
    assert person["languages_spoken"] == ["uk"]
    assert person["_links"]["self"] == first["_links"]["osdi:person"]

    people = read(client, account, aep["_links"]["osdi:people"]["href"])
    osdi_fields(people, COLLECTION, COLLECTION)
    assert [p["given_name"] for p in people["_embedded"]["osdi:people"]] == [
        "Olena Kovalenko",
        "Kim Min-jun",
    ]
    kim = people["_embedded"]["osdi:people"][1]
    assert kim["email_addresses"][0]["status"] == "unsubscribed"  # never opted in
    assert kim["postal_addresses"] == [{"primary": True, "country": "KR"}]
    assert people["_links"]["osdi:people"] == [
        p["_links"]["self"] for p in people["_embedded"]["osdi:people"]
    ]


def test_a_bearer_token_works_too_and_nothing_is_read_without_a_token(
    client: TestClient, session: Session, admin: Account
) -> None:
    make_petition(session)
    response = client.get(AEP + "petitions", headers=admin.headers)
    assert response.status_code == 200 and response.json()["total_records"] == 1
    for path in ("", "petitions", "people", "people/1"):
        anonymous = client.get(AEP + path)
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        wrong = client.get(AEP + path, headers={"OSDI-API-Token": "chorus_not-a-token"})
        assert wrong.status_code == 401


def test_collections_page_the_osdi_way(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Any, admin: Account
) -> None:
    petition = make_petition(session)
    for n in range(5):
        sign_and_confirm(client, smtp, outbox, petition.slug, **signer(email=f"p{n}@example.org"))
    base = f"http://testserver/api/osdi/v1/petitions/{petition.slug}/signatures"

    page1 = read(client, admin, f"{base}?per_page=2")
    assert (page1["total_records"], page1["total_pages"], page1["per_page"]) == (5, 3, 2)
    assert page1["page"] == 1
    assert page1["_links"]["self"]["href"] == f"{base}?per_page=2"
    assert "prev" not in page1["_links"]
    seen = [s["identifiers"][0] for s in page1["_embedded"]["osdi:signatures"]]

    page = page1
    while "next" in page["_links"]:
        page = read(client, admin, page["_links"]["next"]["href"])
        seen += [s["identifiers"][0] for s in page["_embedded"]["osdi:signatures"]]
    assert page["page"] == 3 and len(page["_embedded"]["osdi:signatures"]) == 1
    assert page["_links"]["prev"]["href"] == f"{base}?page=2&per_page=2"
    ids = [s.id for s in session.exec(select(Signature).order_by(col(Signature.id)))]
    assert seen == [f"chorus:{i}" for i in ids]  # each once, oldest first

    beyond = read(client, admin, f"{base}?page=9&per_page=2")
    assert beyond["_embedded"]["osdi:signatures"] == [] and beyond["page"] == 9
    assert beyond["_links"]["prev"]["href"] == f"{base}?page=3&per_page=2"
    assert "next" not in beyond["_links"]

    people = read(client, admin, "http://testserver/api/osdi/v1/people?per_page=4")
    assert (people["total_records"], people["total_pages"]) == (5, 2)
    assert len(people["_embedded"]["osdi:people"]) == 4
    assert people["_links"]["next"]["href"].endswith("/people?page=2&per_page=4")

    for bad in ("per_page=101", "per_page=0", "page=0", "page=x"):
        response = client.get(f"{base}?{bad}", headers=admin.headers)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"


def test_an_organiser_reads_only_their_campaigns_and_nothing_of_a_person_elsewhere(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Any, make_account: Any
) -> None:
    ours, theirs = make_petition(session), make_petition(session)
    # One person signed both, under two spellings of their name and from two countries.
    sign_and_confirm(
        client,
        smtp,
        outbox,
        theirs.slug,
        **signer(name="Ann Elsewhere", email="ann@example.org", country="FR", consent_updates=True),
    )
    sign_and_confirm(
        client, smtp, outbox, ours.slug, **signer(name="Ann Here", email="Ann@example.org")
    )
    sign_and_confirm(client, smtp, outbox, theirs.slug, **signer(email="only-theirs@example.org"))
    organiser: Account = make_account("organiser", [campaign_slug(session, ours)])
    admin: Account = make_account("admin")
    theirs_ids = [
        s.id for s in session.exec(select(Signature).where(Signature.petition_id == theirs.id))
    ]
    ours_id = session.exec(select(Signature.id).where(Signature.petition_id == ours.id)).one()

    listed = read(client, organiser, "http://testserver/api/osdi/v1/petitions")
    assert [p["name"] for p in listed["_embedded"]["osdi:petitions"]] == [ours.slug]
    token = {"OSDI-API-Token": organiser.headers["Authorization"].removeprefix("Bearer ")}
    for path in (
        f"petitions/{theirs.slug}",
        f"petitions/{theirs.slug}/signatures",
        f"petitions/{theirs.slug}/signatures/{theirs_ids[0]}",
        f"petitions/{ours.slug}/signatures/{theirs_ids[0]}",
        *(f"people/{i}" for i in theirs_ids),
    ):
        response = client.get(AEP + path, headers=token, follow_redirects=False)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"

    # The shared person, as the organiser sees them: made of our signature alone.
    people = read(client, organiser, "http://testserver/api/osdi/v1/people")
    assert people["total_records"] == 1
    [ann] = people["_embedded"]["osdi:people"]
    assert ann["identifiers"] == [f"chorus:{ours_id}"]
    assert ann["given_name"] == "Ann Here"
    assert ann["postal_addresses"] == [{"primary": True, "country": "UA"}]
    assert ann["email_addresses"][0]["status"] == "unsubscribed"  # consent was given elsewhere
    everything = json.dumps([people, read(client, organiser, ann["_links"]["self"]["href"])])
    assert "Elsewhere" not in everything and "FR" not in everything

    # An admin sees them all; the shared person once, under their first signature.
    people = read(client, admin, "http://testserver/api/osdi/v1/people")
    assert people["total_records"] == 2
    ann = people["_embedded"]["osdi:people"][0]
    assert ann["identifiers"] == [f"chorus:{theirs_ids[0]}"]
    assert ann["given_name"] == "Ann Here"  # their latest signature says who they are now
    assert ann["email_addresses"][0]["status"] == "subscribed"
    # An organiser with no campaign reads empty collections.
    nobody: Account = make_account("organiser", [])
    for collection in ("petitions", "people"):
        empty = read(client, nobody, f"http://testserver/api/osdi/v1/{collection}")
        assert empty["total_records"] == 0 and empty["_embedded"] == {f"osdi:{collection}": []}


def test_withdrawn_and_anonymised_signatures_leave_no_person_behind(
    client: TestClient,
    session: Session,
    engine: Engine,
    settings: Settings,
    smtp: Mailbox,
    outbox: Any,
    admin: Account,
) -> None:
    kept, closed = make_petition(session), make_petition(session)
    for slug, email in (
        (closed.slug, "gone@example.org"),
        (kept.slug, "moved@example.org"),
        (kept.slug, "withdrawn@example.org"),
        (closed.slug, "moved@example.org"),
    ):
        sign_and_confirm(
            client,
            smtp,
            outbox,
            slug,
            **signer(name="Secret Person", email=email, postcode="SW1A 1AA"),
        )

    def stored(petition: Petition, email: str) -> Signature:
        query = select(Signature).where(
            Signature.petition_id == petition.id, Signature.email == email
        )
        return session.exec(query).one()

    gone, moved, withdrawn, moved_later = (
        stored(closed, "gone@example.org"),
        stored(kept, "moved@example.org"),
        stored(kept, "withdrawn@example.org"),
        stored(closed, "moved@example.org"),
    )
    people = "http://testserver/api/osdi/v1/people"
    assert read(client, admin, people)["total_records"] == 3

    # Withdrawing: the signature is no longer listed; a person whose only signature it was is
    # gone; one who signed elsewhere too moves to that signature (the old id redirects).
    for signature in (withdrawn, moved):
        assert signature.id is not None
        manage = rights_service.manage_token(settings, signature_id=signature.id)
        response = client.post("/api/v1/signatures/manage/withdraw", json={"token": manage})
        assert response.status_code == 200
    signatures = read(
        client, admin, f"http://testserver/api/osdi/v1/petitions/{kept.slug}/signatures"
    )
    assert signatures["total_records"] == 0 and signatures["_embedded"]["osdi:signatures"] == []
    assert client.get(f"{AEP}people/{withdrawn.id}", headers=admin.headers).status_code == 404
    redirect = client.get(f"{AEP}people/{moved.id}", headers=admin.headers, follow_redirects=False)
    assert redirect.status_code == 301
    assert redirect.headers["location"] == f"/api/osdi/v1/people/{moved_later.id}"
    assert read(client, admin, people)["total_records"] == 2

    # Anonymising (retention): the signatures still count and are listed, with no person and
    # nothing personal; their people are gone.
    session.execute(
        update(Petition)
        .where(col(Petition.id) == closed.id)
        .values(status=PetitionStatus.closed, closed_at=utcnow() - timedelta(days=400))
    )
    session.commit()
    rights_service.anonymise_expired(engine, days=183)
    listed = read(
        client, admin, f"http://testserver/api/osdi/v1/petitions/{closed.slug}/signatures"
    )
    assert listed["total_records"] == 2
    petition = read(client, admin, f"http://testserver/api/osdi/v1/petitions/{closed.slug}")
    assert petition["total_signatures"] == 2
    for document in listed["_embedded"]["osdi:signatures"]:
        assert set(document["_links"]) == {"self", "osdi:petition"}
    assert read(client, admin, people)["total_records"] == 0
    for signature in (gone, moved, moved_later):
        assert client.get(f"{AEP}people/{signature.id}", headers=admin.headers).status_code == 404
    assert "Secret" not in json.dumps(listed) and "SW1A" not in json.dumps(listed)


def test_a_bounced_address_reads_as_bouncing(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Any, admin: Account
) -> None:
    petition = make_petition(session)
    sign_and_confirm(
        client, smtp, outbox, petition.slug, **signer(email="b@example.org", consent_updates=True)
    )
    suppress(session, email="B@example.org", reason=SuppressionReason.bounced)
    session.commit()
    [person] = read(client, admin, "http://testserver/api/osdi/v1/people")["_embedded"][
        "osdi:people"
    ]
    assert person["email_addresses"][0]["status"] == "bouncing"


def test_the_osdi_api_runs_in_the_admin_lane() -> None:
    # Its own pool and concurrency limit: a tool paging through people never takes the
    # connections public signing needs (app/core/lanes.py).
    assert is_admin_path("/api/osdi/v1/people") and is_admin_path("/api/osdi")
    assert not is_admin_path("/api/v1/petitions/x/signatures")
