"""Delivering a petition from the console: the delivery is the admin API's (the same letters over
real SMTP, the same audit entry, idempotent when the form is sent twice), the annex and manifest
downloaded from the console are the API's bytes (the annex's SHA-256 is the manifest's), each
official's preview is the API's delivery preview with the real figures, the log shows states,
reasons and attempts, and refused input comes back beside its field."""

from __future__ import annotations

import hashlib
import html
import json
import re
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.campaigns.models import Campaign
from app.core.config import Settings
from app.letters.models import LetterDelivery, PetitionDelivery
from app.petitions.models import Petition
from app.targets.models import Target
from tests.conftest import Account, Mailbox, body_text
from tests.console.helpers import csrf_of, signed_in
from tests.factories import audited, make_petition
from tests.letters.test_delivery import confirmed_signatures


@pytest.fixture
def organiser(make_account: Any, session: Session, demo: Petition) -> Account:
    slug = session.exec(select(Campaign.slug).where(Campaign.id == demo.campaign_id)).one()
    account: Account = make_account("organiser", [slug])
    return account


def deliveries(session: Session) -> list[PetitionDelivery]:
    session.expire_all()
    return list(session.exec(select(PetitionDelivery).order_by(col(PetitionDelivery.number))))


def attempts(page: str) -> list[int]:
    """The attempts column of a page's letters."""
    return [int(n) for n in re.findall(r'data-testid="attempts">(\d+)<', page)]


def test_an_organiser_delivers_and_downloads_the_annex_and_manifest_the_api_gives(
    client: TestClient,
    demo: Petition,
    session: Session,
    settings: Settings,
    smtp: Mailbox,
    outbox: Any,
    organiser: Account,
) -> None:
    confirmed_signatures(session, settings, demo)
    smtp.clear()
    signed_in(client, organiser.email, organiser.password)
    assert (
        f'href="/admin/petitions/{demo.slug}/delivery"'
        in client.get(f"/admin/petitions/{demo.slug}").text
    )
    base = f"/admin/petitions/{demo.slug}/delivery"
    page = client.get(base)
    assert page.status_code == 200, page.text
    assert "this is delivery no. 1: 4 confirmed signatures; rows in the annex: 4." in page.text
    assert page.text.count(f'href="{base}/preview?official=') == 5  # one per official
    assert "The petition has not been delivered yet." in page.text

    confirm = client.get(f"{base}/confirm", params={"annex_fields": ["postcode"]})
    assert confirm.status_code == 200, confirm.text
    assert "Letters go to 5 officials now" in confirm.text
    assert "Columns of the annex: Name, Country, Postcode." in confirm.text
    assert deliveries(session) == []  # asking is not delivering
    form = {
        "csrf_token": csrf_of(confirm.text),
        "annex_fields": ["postcode"],
        "delivered": re.search(r'name="delivered" value="(\d+)"', confirm.text)[1],  # type: ignore[index]
    }
    sent = client.post(base, data=form, follow_redirects=False)
    assert sent.status_code == 303
    assert sent.headers["location"] == f"{base}?done=delivered&number=1"
    # The form sent twice (a double click, the back button): nothing is delivered again.
    again = client.post(base, data=form, follow_redirects=False)
    assert again.headers["location"] == f"{base}?done=unchanged&number=1"
    [made] = deliveries(session)
    assert made.annex_fields == ["name", "country", "postcode"]
    [entry] = audited(session, "petition.deliver")
    assert entry.actor_email == organiser.email and entry.details["sha256"] == made.annex_sha256

    # The officials' letters go out over SMTP; one server asks to try later: the log says so.
    smtp.refuse_with = "421 4.3.2 service shutting down"
    outbox()
    log = client.get(f"{base}/log")
    assert log.status_code == 200
    tries = attempts(log.text)
    assert len(tries) == 5 and min(tries) >= 1  # (a retry due during the run may be made too)
    assert html.unescape(log.text).count("(421, '4.3.2 service shutting down')") == 5
    assert log.text.count(">Queued</span>") == 5
    smtp.refuse_with = None
    time.sleep(0.3)  # the retry's backoff
    outbox()
    smtp.wait_for(5)
    [to_president] = smtp.to("president@ukraine.example")
    assert made.annex_sha256 in body_text(to_president)
    shown = client.get(f"{base}?done=delivered&number=1").text
    assert "Delivery no. 1 is made" in shown
    assert shown.count(">Sent</span>") == 5
    assert all(after > before for after, before in zip(attempts(shown), tries, strict=True))
    assert f'data-testid="sha256">{made.annex_sha256}<' in shown

    # The downloads: the API's bytes; the annex's SHA-256 is the manifest's.
    annex = client.get(f"{base}/1/annex.csv")
    manifest = client.get(f"{base}/1/manifest.json")
    assert annex.status_code == manifest.status_code == 200
    assert annex.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = f'attachment; filename="{demo.slug}-signatures-1.csv"'
    assert annex.headers["content-disposition"] == disposition
    assert manifest.headers["content-disposition"].startswith("attachment;")
    api = f"/api/v1/admin/petitions/{demo.slug}/deliveries/1"
    assert annex.content == client.get(f"{api}/annex.csv", headers=organiser.headers).content
    api_manifest = client.get(f"{api}/manifest.json", headers=organiser.headers)
    assert manifest.content == api_manifest.content
    assert (
        hashlib.sha256(annex.content).hexdigest() == json.loads(manifest.content)["annex"]["sha256"]
    )
    assert client.get(f"{base}/2/annex.csv").status_code == 404
    # Both downloads are in the audit log, as exports are: the annex lists the signatories.
    downloads = audited(session, "delivery.annex_download")
    assert [(d.actor_email, d.details["via"]) for d in downloads] == [
        (organiser.email, "console"),
        (organiser.email, "api"),
    ]

    # Delivering again is a new delivery, asked for from a new confirmation page.
    confirm = client.get(f"{base}/confirm")
    assert 'name="delivered" value="1"' in confirm.text and "Deliver again" in confirm.text
    form = {"csrf_token": csrf_of(confirm.text), "delivered": "1"}
    assert (
        client.post(base, data=form, follow_redirects=False)
        .headers["location"]
        .endswith("done=delivered&number=2")
    )
    assert [d.annex_fields for d in deliveries(session)] == [
        ["name", "country", "postcode"],
        ["name", "country"],
    ]
    assert len(audited(session, "petition.deliver")) == 2


def test_each_officials_preview_is_the_apis_delivery_preview(
    client: TestClient, demo: Petition, session: Session, settings: Settings, organiser: Account
) -> None:
    confirmed_signatures(session, settings, demo)
    campaign = session.exec(select(Campaign.slug).where(Campaign.id == demo.campaign_id)).one()
    signed_in(client, organiser.email, organiser.password)
    base = f"/admin/petitions/{demo.slug}/delivery"
    for key, language in (("ua-president", "uk"), ("kr-mofa", "ko"), ("eu-hr-vp", "en")):
        target = session.exec(select(Target).where(Target.key == key)).one()
        page = client.get(f"{base}/preview", params={"official": str(target.id)})
        assert page.status_code == 200, page.text
        api = client.post(
            f"/api/v1/admin/campaigns/{campaign}/letter-templates/delivery/{language}/preview",
            json={"target_id": target.id, "petition": demo.slug},
            headers=organiser.headers,
        ).json()
        subject = re.search(r'data-testid="preview-subject"[^>]*>([^<]*)<', page.text)
        text = re.search(r'data-testid="preview-text"[^>]*>([^<]*)<', page.text, re.S)
        assert subject and text
        assert html.unescape(subject[1]) == api["subject"]
        assert html.unescape(text[1]) == api["text"]
        assert "4" in api["subject"]  # the real count
    assert deliveries(session) == []  # previews deliver nothing

    for bad in ("999999", "nope", "0"):
        refused = client.get(f"{base}/preview", params={"official": bad})
        assert refused.status_code == 422
        assert 'id="f-official-error">Choose one of the officials listed.' in refused.text


def test_refused_columns_and_a_petition_without_officials_come_back_beside_the_form(
    client: TestClient, demo: Petition, session: Session, organiser: Account, admin: Account
) -> None:
    csrf = signed_in(client, organiser.email, organiser.password)
    base = f"/admin/petitions/{demo.slug}/delivery"
    for chosen, message in (
        (["email"], "Choose one of the options."),
        (["postcode", "postcode", "confirmed_at"], "Choose at most 2 columns."),
    ):
        asked = client.get(f"{base}/confirm", params={"annex_fields": chosen})
        assert asked.status_code == 422
        assert f'id="f-annex_fields-error">{message}<' in asked.text
        sent = client.post(base, data={"csrf_token": csrf, "annex_fields": chosen})
        assert sent.status_code == 422
        assert f'id="f-annex_fields-error">{message}<' in sent.text
    assert deliveries(session) == []

    bare = make_petition(session, with_target=False)
    client.post("/admin/logout", data={"csrf_token": csrf})
    csrf = signed_in(client, admin.email, admin.password)
    page = client.get(f"/admin/petitions/{bare.slug}/delivery")
    assert "No official of this petition can get a letter yet" in page.text
    refused = client.post(f"/admin/petitions/{bare.slug}/delivery", data={"csrf_token": csrf})
    assert refused.status_code == 422
    assert "The petition has no official to deliver it to" in refused.text
    assert deliveries(session) == [] and audited(session, "petition.deliver") == []


def test_the_log_filters_by_state_and_official_and_refuses_unknown_ones(
    client: TestClient,
    demo: Petition,
    session: Session,
    settings: Settings,
    smtp: Mailbox,
    outbox: Any,
    organiser: Account,
) -> None:
    confirmed_signatures(session, settings, demo)
    response = client.post(
        f"/api/v1/admin/petitions/{demo.slug}/deliveries", json={}, headers=organiser.headers
    )
    assert response.status_code == 201
    smtp.refuse_with = "550 5.1.1 no such mailbox"
    outbox()
    smtp.refuse_with = None
    signed_in(client, organiser.email, organiser.password)
    base = f"/admin/petitions/{demo.slug}/delivery/log"
    president = session.exec(select(Target).where(Target.key == "ua-president")).one()
    mine = client.get(base, params={"official": str(president.id), "state": "failed"})
    assert mine.status_code == 200
    assert mine.text.count('data-testid="letter-') == 1
    assert (
        "(550, '5.1.1 no such mailbox')" in html.unescape(mine.text)
        and ">Failed</span>" in mine.text
    )
    assert client.get(base, params={"state": "sent"}).text.count('data-testid="letter-') == 0
    bad = client.get(base, params={"state": "lost", "official": "x"})
    assert bad.status_code == 422
    assert 'id="f-state-error">Choose one of the options.' in bad.text
    assert 'id="f-official-error">Choose one of the officials listed.' in bad.text
    letters = session.exec(select(LetterDelivery)).all()
    assert len(letters) == 5


@pytest.mark.parametrize(("locale", "title"), [("ko", "청원 전달하기"), ("uk", "Передати петицію")])
def test_the_delivery_pages_speak_korean_and_ukrainian(
    client: TestClient,
    demo: Petition,
    session: Session,
    settings: Settings,
    organiser: Account,
    locale: str,
    title: str,
) -> None:
    confirmed_signatures(session, settings, demo)
    response = client.post(
        f"/api/v1/admin/petitions/{demo.slug}/deliveries", json={}, headers=organiser.headers
    )
    assert response.status_code == 201
    csrf = signed_in(client, organiser.email, organiser.password)
    client.post("/admin/language", data={"csrf_token": csrf, "locale": locale, "next": "/admin/"})
    base = f"/admin/petitions/{demo.slug}/delivery"
    official = session.exec(select(Target.id).where(Target.key == "kr-mofa")).one()
    for path in (base, f"{base}/confirm", f"{base}/preview?official={official}", f"{base}/log"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert f'<html lang="{locale}">' in page.text
        assert "console." not in page.text.replace('href="/admin/static/console.css"', ""), path
    assert f">{title}<" in client.get(base).text
