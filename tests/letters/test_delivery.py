"""Organisers deliver a petition to its officials: count, per-country summary, annex, manifest."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from email.message import EmailMessage
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.core.config import Settings
from app.letters.models import LetterTemplate, PetitionDelivery, TemplateKind
from app.petitions.models import Petition
from app.signatures import service as signature_service
from app.signatures.models import SignatureCreate
from tests.conftest import Account, Mailbox, body_text
from tests.factories import audited, make_petition

SIGNERS = [
    ("Olena Kovalenko", "olena@example.org", "UA"),
    ("Kim Min-jun", "minjun@example.org", "KR"),
    ("Park Ji-woo", "jiwoo@example.org", "KR"),
    ("=cmd|' /C calc'!A0", "formula@example.org", "GB"),  # stored before validation existed
]


def confirmed_signatures(session: Session, settings: Settings, petition: Petition) -> None:
    for name, email, country in SIGNERS:
        data = SignatureCreate.model_construct(
            name=name, email=email, country=country, postcode="01001", consent_updates=False
        )
        signature_service.sign(
            session, petition=petition, data=data, locale="en", settings=settings
        )
    session.commit()
    from sqlmodel import select

    from app.signatures.models import Signature

    for signature in session.exec(select(Signature)).all():
        assert signature.id is not None
        token = signature_service.confirmation_token(settings, signature_id=signature.id)
        signature_service.confirm(session, token=token, settings=settings)
    session.commit()


def attachments(message: EmailMessage) -> dict[str, bytes]:
    found = {}
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found[str(part.get_filename())] = payload
    return found


def deliver(client: TestClient, account: Account, slug: str, **body: Any) -> Any:
    return client.post(
        f"/api/v1/admin/petitions/{slug}/deliveries", json=body, headers=account.headers
    )


def test_delivery_sends_each_official_the_count_summary_annex_and_manifest(
    client: TestClient,
    demo: Petition,
    session: Session,
    settings: Settings,
    smtp: Mailbox,
    outbox: Any,
    admin: Account,
) -> None:
    confirmed_signatures(session, settings, demo)
    smtp.clear()
    response = deliver(client, admin, demo.slug)
    assert response.status_code == 201, response.text
    delivery = response.json()
    assert delivery["number"] == 1 and delivery["confirmed_count"] == 4
    assert delivery["countries"][0] == {"country": "KR", "count": 2}
    assert delivery["annex_rows"] == 4 and delivery["annex_fields"] == ["name", "country"]
    assert len(delivery["letters"]) == 5  # the demo petition's five officials
    outbox()
    smtp.wait_for(5)
    [to_president] = smtp.to("president@ukraine.example")
    text = body_text(to_president)
    # The President's letter is in Ukrainian (the target's language), with the count and summary.
    assert to_president["Subject"].startswith("Петиція:")
    assert "4 людей" in text and "Південна Корея: 2" in text
    assert delivery["annex_sha256"] in text
    files = attachments(to_president)
    annex_name = f"{demo.slug}-signatures-1.csv"
    assert set(files) == {annex_name, "manifest.json"}
    annex = files[annex_name]
    manifest = json.loads(files["manifest.json"])
    # The recipient can check the annex: its SHA-256 is the manifest's.
    assert hashlib.sha256(annex).hexdigest() == manifest["annex"]["sha256"]
    assert manifest["annex"]["rows"] == 4 and manifest["confirmed_count"] == 4
    rows = list(csv.reader(io.StringIO(annex.decode("utf-8-sig"))))
    assert rows[0] == ["name", "country"]
    assert ["Olena Kovalenko", "UA"] in rows
    assert ["'=cmd|' /C calc'!A0", "GB"] in rows  # no formula reaches a spreadsheet
    assert "@" not in annex.decode()  # no e-mail address goes to an official
    # Every official got the same annex.
    [to_eu] = smtp.to("hr-vp@eu.example")
    assert attachments(to_eu)[annex_name] == annex
    assert to_eu["Subject"].startswith("Petition:")
    # The organiser can fetch the annex too, byte for byte.
    fetched = client.get(
        f"/api/v1/admin/petitions/{demo.slug}/deliveries/1/annex.csv", headers=admin.headers
    )
    assert fetched.content == annex
    [downloaded] = audited(
        session, "delivery.annex_download"
    )  # it lists the signatories: audited, as exports are
    assert downloaded.actor_email == admin.email and downloaded.details["via"] == "api"
    listed = client.get(
        f"/api/v1/admin/petitions/{demo.slug}/deliveries", headers=admin.headers
    ).json()
    assert {letter["state"] for letter in listed["data"][0]["letters"]} == {"sent"}


def test_delivering_again_sends_nothing_unless_a_new_delivery_is_asked_for(
    client: TestClient,
    demo: Petition,
    session: Session,
    settings: Settings,
    smtp: Mailbox,
    outbox: Any,
    admin: Account,
) -> None:
    confirmed_signatures(session, settings, demo)
    first = deliver(client, admin, demo.slug)
    assert first.status_code == 201
    outbox()
    smtp.wait_for(5)
    again = deliver(client, admin, demo.slug)
    assert again.status_code == 200
    assert again.json()["number"] == 1
    outbox()
    assert len(smtp.messages) == 5
    new = deliver(client, admin, demo.slug, new=True, annex_fields=["postcode"])
    assert new.status_code == 201
    assert new.json()["number"] == 2
    assert new.json()["annex_fields"] == ["name", "country", "postcode"]
    outbox()
    smtp.wait_for(10)
    [latest] = [m for m in smtp.to("mofa@korea.example") if "signatures-2.csv" in str(m)]
    annex = attachments(latest)[f"{demo.slug}-signatures-2.csv"].decode("utf-8-sig")
    assert annex.splitlines()[0] == "name,country,postcode"


def test_a_delivery_survives_an_smtp_outage(
    client: TestClient,
    demo: Petition,
    session: Session,
    settings: Settings,
    smtp: Mailbox,
    outbox: Any,
    admin: Account,
) -> None:
    confirmed_signatures(session, settings, demo)
    assert deliver(client, admin, demo.slug).status_code == 201
    smtp.refuse_with = "421 4.3.2 service shutting down"
    outbox()
    log = client.get(f"/api/v1/admin/petitions/{demo.slug}/letters", headers=admin.headers).json()[
        "data"
    ]
    assert {(e["state"], e["kind"]) for e in log} == {("queued", "petition")}
    assert all("421" in e["reason"] for e in log)
    smtp.refuse_with = None
    import time

    time.sleep(0.3)
    outbox()
    smtp.wait_for(5)
    log = client.get(f"/api/v1/admin/petitions/{demo.slug}/letters", headers=admin.headers).json()[
        "data"
    ]
    assert {e["state"] for e in log} == {"sent"}


def test_a_petition_without_officials_cannot_be_delivered(
    client: TestClient, admin: Account, session: Session
) -> None:
    petition = make_petition(session, with_target=False)
    response = deliver(client, admin, petition.slug)
    assert response.status_code == 409
    assert response.json()["title"] == "The petition has no official to deliver it to"


def test_retention_removes_letters_and_annex_names_but_keeps_the_record(
    client: TestClient,
    demo: Petition,
    session: Session,
    settings: Settings,
    smtp: Mailbox,
    outbox: Any,
    admin: Account,
    engine: Any,
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlmodel import select

    from app.letters.models import Letter
    from app.petitions.models import PetitionStatus
    from app.rights import service as rights_service

    confirmed_signatures(session, settings, demo)
    body = {
        "name": "Ji-woo Park",
        "email": "jiwoo.letter@example.org",
        "city": "Busan",
        "country": "KR",
        "targets": ["kr-mofa"],
        "message": "Please let them go where they wish to go, in safety and soon.",
    }
    assert client.post(f"/api/v1/petitions/{demo.slug}/letters", json=body).status_code == 202
    assert deliver(client, admin, demo.slug).status_code == 201
    petition = session.get(Petition, demo.id)
    assert petition is not None
    petition.status = PetitionStatus.closed
    petition.closed_at = datetime.now(UTC) - timedelta(days=200)
    session.add(petition)
    session.commit()

    report = rights_service.anonymise_expired(engine, days=183)
    assert report.signatures == len(SIGNERS)
    [letter] = session.exec(select(Letter)).all()
    assert (letter.name, letter.email, letter.city, letter.message) == ("", "", "", "")
    gone = client.get(
        f"/api/v1/admin/petitions/{demo.slug}/deliveries/1/annex.csv", headers=admin.headers
    )
    assert gone.status_code == 410
    manifest = client.get(
        f"/api/v1/admin/petitions/{demo.slug}/deliveries/1/manifest.json", headers=admin.headers
    )
    assert manifest.status_code == 200 and len(manifest.json()["annex"]["sha256"]) == 64


def test_a_list_too_big_to_attach_goes_as_a_link_that_downloads_it_as_sent(
    client: TestClient,
    demo: Petition,
    session: Session,
    settings: Settings,
    smtp: Mailbox,
    outbox: Any,
    admin: Account,
) -> None:
    confirmed_signatures(session, settings, demo)
    # A Ukrainian delivery letter written before the link existed: the link is added to it.
    session.add(
        LetterTemplate(
            campaign_id=demo.campaign_id,
            kind=TemplateKind.delivery,
            language="uk",
            subject="Петиція {{ petition.title }}",
            body="Шановний(а) {{ target.name }}, у додатку {{ delivery.annex_filename }}.",
        )
    )
    session.commit()
    smtp.clear()
    assert deliver(client, admin, demo.slug).status_code == 201
    outbox(ANNEX_ATTACH_MAX_BYTES=10)  # (mail servers refuse messages over 10-25 MB)
    smtp.wait_for(5)
    links = set()
    for address, words in (
        ("hr-vp@eu.example", "too large"),
        ("unification@korea.example", "너무"),
        ("president@ukraine.example", "завеликий"),
    ):
        [letter] = smtp.to(address)
        files = attachments(letter)
        assert set(files) == {"manifest.json"}  # the list is linked, the manifest attached
        text = body_text(letter)
        assert words in text
        [line] = [line for line in text.splitlines() if "/api/v1/annexes/" in line]
        links.add(line.split()[-1])
    assert len(links) == 1  # every official gets the same list
    path = links.pop().removeprefix("http://testserver")
    download = client.get(path)
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/gzip"
    filename = f"{demo.slug}-signatures-1.csv.gz"
    assert download.headers["content-disposition"] == f'attachment; filename="{filename}"'
    annex = gzip.decompress(download.content)
    manifest = json.loads(files["manifest.json"])
    assert hashlib.sha256(annex).hexdigest() == manifest["annex"]["sha256"]
    assert annex.decode("utf-8-sig").splitlines()[0] == "name,country"

    for forged in (path[:-4] + "AAAA", "/api/v1/annexes/not-a-token"):
        refused = client.get(forged)
        assert refused.status_code == 404
        assert refused.headers["content-type"].startswith("application/problem+json")
    # Each download of the list is in the audit log (the link's: by nobody signed in).
    [downloaded] = audited(session, "delivery.annex_download")
    assert downloaded.actor_email is None and downloaded.campaign_id == demo.campaign_id
    assert downloaded.details == {"number": 1, "via": "link", "sha256": manifest["annex"]["sha256"]}
    # After the retention period the link says so, and nothing was downloaded.
    [stored] = session.exec(select(PetitionDelivery)).all()
    stored.annex_gzip = b""
    session.add(stored)
    session.commit()
    assert client.get(path).status_code == 410
    assert len(audited(session, "delivery.annex_download")) == 1


def test_the_annex_opens_in_a_spreadsheet_with_names_and_postcodes_intact(
    client: TestClient,
    demo: Petition,
    session: Session,
    settings: Settings,
    smtp: Mailbox,
    outbox: Any,
    admin: Account,
) -> None:
    confirmed_signatures(session, settings, demo)
    assert deliver(client, admin, demo.slug, annex_fields=["postcode"]).status_code == 201
    outbox()
    smtp.wait_for(5)
    [to_minister] = smtp.to("unification@korea.example")
    annex_name = f"{demo.slug}-signatures-1.csv"
    [part] = [p for p in to_minister.iter_attachments() if p.get_filename() == annex_name]
    # Excel reads a CSV without a byte order mark in the local code page (Hangul and Cyrillic
    # turn to noise); mail clients learn the charset from the part's type.
    assert part.get_content_type() == "text/csv"
    assert part.get_content_charset() == "utf-8"
    annex = part.get_payload(decode=True)
    assert isinstance(annex, bytes) and annex.startswith(b"\xef\xbb\xbf")
    manifest = json.loads(attachments(to_minister)["manifest.json"])
    assert hashlib.sha256(annex).hexdigest() == manifest["annex"]["sha256"]
    assert manifest["annex"]["bytes"] == len(annex)
    rows = list(csv.reader(io.StringIO(annex.decode("utf-8-sig"))))
    assert rows[0] == ["name", "country", "postcode"]
    # 01001 as text, the way spreadsheets keep it: not the number 1001.
    assert ["Olena Kovalenko", "UA", "'01001"] in rows
    fetched = client.get(
        f"/api/v1/admin/petitions/{demo.slug}/deliveries/1/annex.csv", headers=admin.headers
    )
    assert fetched.headers["content-type"] == "text/csv; charset=utf-8"
    assert fetched.content == annex


def test_a_delivery_letter_preview_has_the_figures_the_delivery_sends(
    client: TestClient,
    demo: Petition,
    session: Session,
    settings: Settings,
    smtp: Mailbox,
    outbox: Any,
    admin: Account,
) -> None:
    from app.campaigns import service as campaign_service

    confirmed_signatures(session, settings, demo)
    campaign_slug = campaign_service.slug_of(session, campaign_id=demo.campaign_id)
    targets = client.get(
        f"/api/v1/admin/campaigns/{campaign_slug}/targets", headers=admin.headers
    ).json()["data"]
    eu = next(t for t in targets if t["key"] == "eu-hr-vp")
    preview = client.post(
        f"/api/v1/admin/campaigns/{campaign_slug}/letter-templates/delivery/en/preview",
        json={"target_id": eu["id"]},
        headers=admin.headers,
    )
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    smtp.clear()
    assert deliver(client, admin, demo.slug).status_code == 201
    outbox()
    smtp.wait_for(5)
    [to_eu] = smtp.to("hr-vp@eu.example")
    # The same count, summary, annex name and row count as the letter the official received;
    # only the annex's SHA-256 is not known before the delivery writes the annex.
    assert (
        shown["subject"]
        == to_eu["Subject"]
        == f"Petition: {demo.translations['en']['title']} (4 signatures)"
    )
    sent = body_text(to_eu)
    before_hash = "The SHA-256 of the list is:"
    assert shown["text"].split(before_hash)[0] == sent.split(before_hash)[0].strip("\n")
    assert "- South Korea: 2" in shown["text"] and "(4 rows)" in shown["text"]
    assert f"{demo.slug}-signatures-1.csv" in shown["text"]
