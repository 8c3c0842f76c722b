"""A petition's signatures in the console: the count shown for a set of filters is the number of
rows the export holds; the CSV (with or without its BOM) and the NDJSON downloaded from the
console are byte for byte the admin API's export with the same filters, audited alike; refused
filters come back next to their field; trending sources are invalidated and released through the
abuse service, audited."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from app.audit.models import AuditEntry
from app.campaigns.models import Campaign
from app.email.models import OutboxMessage
from app.petitions.models import Petition, PetitionStatus
from app.signatures.models import Signature, SignatureStatus
from tests.conftest import Account
from tests.console.helpers import csrf_of, signed_in
from tests.factories import make_petition
from tests.updates.test_updates import add_signers


@pytest.fixture
def petition(session: Session) -> Petition:
    petition = make_petition(session, status=PetitionStatus.open)
    add_signers(session, petition, 3, prefix="ua", name="=SUM(A1)")
    add_signers(session, petition, 2, prefix="kr", country="KR", consent_updates=False)
    add_signers(session, petition, 1, prefix="wait", status=SignatureStatus.pending)
    return petition


@pytest.fixture
def organiser(make_account: Any, session: Session, petition: Petition) -> Account:
    slug = session.exec(select(Campaign.slug).where(Campaign.id == petition.campaign_id)).one()
    account: Account = make_account("organiser", [slug])
    return account


def exports(session: Session) -> list[AuditEntry]:
    session.expire_all()
    return list(
        session.exec(
            select(AuditEntry)
            .where(AuditEntry.action == "signatures.export")
            .order_by(col(AuditEntry.id))
        )
    )


FILTERS = {"status": "confirmed", "country": "ua, kr", "consent": "yes", "created_from": ""}
API_QUERY = "status=confirmed&country=UA,KR&consent_updates=true"


def test_the_count_and_the_downloads_are_the_api_export(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    signed_in(client, organiser.email, organiser.password)
    base = f"/admin/petitions/{petition.slug}/signatures"
    page = client.get(base, params=FILTERS)
    assert page.status_code == 200, page.text
    assert re.search(r'data-testid="total"[^>]*>3 signatures match\.', page.text)
    everything = client.get(base)
    assert re.search(r'data-testid="total"[^>]*>6 signatures match\.', everything.text)
    csrf = csrf_of(page.text)
    api = f"/api/v1/admin/petitions/{petition.slug}/signatures?{API_QUERY}"

    for fmt, bom in (("csv", True), ("csv", False), ("ndjson", False)):
        data = {**FILTERS, "format": fmt, "csrf_token": csrf}
        if bom:
            data["bom"] = "1"
        mine = client.post(f"{base}/export", data=data)
        assert mine.status_code == 200, mine.text
        theirs = client.get(f"{api}&format={fmt}&bom={str(bom).lower()}", headers=organiser.headers)
        assert theirs.status_code == 200
        assert mine.content == theirs.content
        assert mine.headers["content-type"] == theirs.headers["content-type"]
        assert mine.headers["content-disposition"] == theirs.headers["content-disposition"]
        assert mine.headers["cache-control"] == "no-store"
        assert mine.content.startswith(b"\xef\xbb\xbf") is bom
        assert (b"'=SUM(A1)" in mine.content) is (fmt == "csv")  # a formula made harmless
        assert mine.content.count(b"\n") == (4 if fmt == "csv" else 3)

    entries = exports(session)
    assert len(entries) == 6
    for console_entry, api_entry in zip(entries[::2], entries[1::2], strict=True):
        assert console_entry.actor_email == api_entry.actor_email == organiser.email
        assert console_entry.details == api_entry.details
        assert console_entry.details["completed"] is True
        assert console_entry.details["row_count"] == 3
    assert entries[0].details["filters"] == {
        "status": "confirmed",
        "country": ["UA", "KR"],
        "consent_updates": True,
    }


def test_refused_filters_come_back_next_to_their_field_and_nothing_is_exported(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    csrf = signed_in(client, organiser.email, organiser.password)
    base = f"/admin/petitions/{petition.slug}/signatures"
    cases = [
        ({"country": "UA, Narnia"}, r'id="f-country-error">Choose a country\.'),
        (
            {"created_from": "2026-11-20", "created_to": "2026-11-10"},
            r'id="f-created_to-error">This is before the start date\.',
        ),
        (
            {"created_from": "yesterday"},
            r'id="f-created_from-error">Give a date, e\.g\. 2026-11-23\.',
        ),
    ]
    for values, expected in cases:
        page = client.get(base, params=values)
        assert page.status_code == 422
        assert re.search(expected, page.text), page.text
        assert 'data-testid="total"' not in page.text
        posted = client.post(f"{base}/export", data={**values, "format": "csv", "csrf_token": csrf})
        assert posted.status_code == 422
        assert re.search(expected, posted.text)
    assert exports(session) == []


def test_roles_and_csrf(
    client: TestClient,
    session: Session,
    petition: Petition,
    organiser: Account,
    make_account: Any,
) -> None:
    other = make_petition(session, status=PetitionStatus.open)
    slug = session.exec(select(Campaign.slug).where(Campaign.id == other.campaign_id)).one()
    stranger: Account = make_account("organiser", [slug])
    base = f"/admin/petitions/{petition.slug}/signatures"

    assert client.get(base, follow_redirects=False).status_code == 303  # signed out

    csrf = signed_in(client, stranger.email, stranger.password)
    assert client.get(base).status_code == 404
    for action in ("export", "invalidate", "release"):
        data = {"format": "csv", "kind": "domain", "source": "example.org", "csrf_token": csrf}
        assert client.post(f"{base}/{action}", data=data).status_code == 404
    client.post("/admin/logout", data={"csrf_token": csrf})

    signed_in(client, organiser.email, organiser.password)
    for action in ("export", "invalidate", "release"):
        data = {"format": "csv", "kind": "domain", "source": "example.org"}
        assert client.post(f"{base}/{action}", data=data).status_code == 403
    assert exports(session) == []
    counted = session.exec(
        select(func.count())
        .select_from(Signature)
        .where(Signature.status == SignatureStatus.invalidated)
    ).one()
    assert counted == 0


def test_trending_sources_are_invalidated_and_released_through_the_abuse_service(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    add_signers(
        session,
        petition,
        3,
        prefix="bot",
        ip_hash="cafe0123",
        email_domain="farm.example",
        status=SignatureStatus.suspect,
        confirmed_at=None,
    )
    add_signers(session, petition, 2, prefix="farm", email_domain="farm.example")
    csrf = signed_in(client, organiser.email, organiser.password)
    base = f"/admin/petitions/{petition.slug}/signatures"
    page = client.get(base, params={"minutes": "60"}).text
    row = re.search(r'data-testid="source-farm.example">.*?</tr>', page, re.S)
    assert row, page
    assert re.findall(r'class="num">(\d+)<', row[0]) == ["5", "3"]
    assert "Release the held signatures from cafe0123" in page

    released = client.post(
        f"{base}/release",
        data={"kind": "ip", "source": "cafe0123", "minutes": "60", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert released.status_code == 303
    after = client.get(released.headers["location"]).text
    assert "3 held signatures released." in after
    session.expire_all()
    statuses = session.exec(
        select(Signature.status).where(col(Signature.email).startswith("bot"))
    ).all()
    assert set(statuses) == {SignatureStatus.pending}
    assert session.exec(select(func.count()).select_from(OutboxMessage)).one() == 3

    done = client.post(
        f"{base}/invalidate",
        data={"kind": "domain", "source": "farm.example", "minutes": "60", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert "5 signatures invalidated." in client.get(done.headers["location"]).text
    session.expire_all()
    left = session.exec(
        select(func.count())
        .select_from(Signature)
        .where(Signature.status == SignatureStatus.invalidated)
    ).one()
    assert left == 5
    audit = {
        e.action: e.details
        for e in session.exec(select(AuditEntry).where(AuditEntry.actor_email == organiser.email))
    }
    assert audit["signatures.release"] == {"ip_hash": "cafe0123", "released": 3}
    assert audit["signatures.invalidate"]["domain"] == "farm.example"
    assert audit["signatures.invalidate"]["invalidated"] == 5
