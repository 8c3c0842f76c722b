"""One letter at a time in the console's delivery page: printable PDFs for officials reached by
post and "mark as posted", supporters' letters held as near-duplicates released or discarded,
each through the review service as the admin API's routes (audited alike). And who may: an
organiser of another campaign gets 404 for every delivery page and form, a signed-out visitor
is sent to sign in, a form without its CSRF token gets 403 and changes nothing."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.audit.models import AuditEntry
from app.campaigns.models import Campaign
from app.core.config import Settings
from app.letters.models import DeliveryState, LetterDelivery, PetitionDelivery
from app.petitions.models import Petition, PetitionStatus
from app.targets.models import DeliveryChannel, Target
from tests.conftest import Account, Mailbox
from tests.console.helpers import csrf_of, signed_in
from tests.factories import audited, make_petition
from tests.letters.test_delivery import confirmed_signatures
from tests.letters.test_supporter_letters import (  # noqa: F401 - (a fixture)
    strict_client,
    write_and_confirm,
)


@pytest.fixture
def organiser(make_account: Any, session: Session, demo: Petition) -> Account:
    slug = session.exec(select(Campaign.slug).where(Campaign.id == demo.campaign_id)).one()
    account: Account = make_account("organiser", [slug])
    return account


def letters(session: Session) -> list[tuple[int, DeliveryState, str | None]]:
    session.expire_all()
    rows = session.exec(select(LetterDelivery).order_by(col(LetterDelivery.id))).all()
    return [(d.id or 0, d.state, d.reason) for d in rows]


def by_post(session: Session, key: str) -> Target:
    target = session.exec(select(Target).where(Target.key == key)).one()
    target.delivery_channel = DeliveryChannel.postal
    session.add(target)
    session.commit()
    return target


def test_a_postal_officials_letter_prints_and_is_marked_posted(
    client: TestClient,
    demo: Petition,
    session: Session,
    settings: Settings,
    smtp: Mailbox,
    outbox: Any,
    organiser: Account,
) -> None:
    pypdf = pytest.importorskip("pypdf")
    confirmed_signatures(session, settings, demo)
    target = by_post(session, "eu-hr-vp")
    response = client.post(
        f"/api/v1/admin/petitions/{demo.slug}/deliveries", json={}, headers=organiser.headers
    )
    assert response.status_code == 201
    [postal] = [e for e in response.json()["letters"] if e["channel"] == "postal"]
    csrf = signed_in(client, organiser.email, organiser.password)
    base = f"/admin/petitions/{demo.slug}/delivery"
    page = client.get(base)
    assert f'data-testid="print-{postal["id"]}"' in page.text
    pdf_path = f"{base}/letters/{postal['id']}/letter.pdf"
    assert page.text.count(f'href="{pdf_path}"') == 2  # to print, and in the delivery's letters

    printed = client.get(pdf_path)
    assert printed.status_code == 200
    assert printed.headers["content-type"] == "application/pdf"
    from_api = client.get(
        f"/api/v1/admin/letters/{postal['id']}/letter.pdf", headers=organiser.headers
    )

    def text(content: bytes) -> str:
        pages = pypdf.PdfReader(io.BytesIO(content)).pages
        return " ".join(" ".join(page.extract_text() for page in pages).split())

    assert text(printed.content) == text(from_api.content)
    assert "1 Rue de l'Exemple" in text(printed.content)
    assert target.text(target.language)["name"] in text(printed.content)

    posted = client.post(
        f"{base}/letters/{postal['id']}/posted", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert posted.status_code == 303 and posted.headers["location"] == f"{base}?done=posted"
    assert (postal["id"], DeliveryState.sent, None) in letters(session)
    [entry] = audited(session, "letter.posted")
    assert entry.actor_email == organiser.email
    assert entry.subject == f"letter_delivery:{postal['id']}"
    page = client.get(f"{base}?done=posted")
    assert "The letter is marked as posted." in page.text
    assert f'data-testid="print-{postal["id"]}"' not in page.text
    # Posted already: refused beside the form, not a second time.
    twice = client.post(f"{base}/letters/{postal['id']}/posted", data={"csrf_token": csrf})
    assert twice.status_code == 409
    assert "Only a postal letter waiting to be posted can be marked as posted" in twice.text
    assert len(audited(session, "letter.posted")) == 1
    # An e-mailed letter is not marked posted either.
    [emailed, *_] = [e for e in response.json()["letters"] if e["channel"] == "email"]
    refused = client.post(f"{base}/letters/{emailed['id']}/posted", data={"csrf_token": csrf})
    assert refused.status_code == 409


def test_held_near_duplicates_are_released_or_discarded(
    strict_client: TestClient,  # noqa: F811
    demo: Petition,
    session: Session,
    smtp: Mailbox,
    outbox: Any,
    organiser: Account,
) -> None:
    copy = "Send them to safety, not back to the North. " * 5
    for n in range(4):
        write_and_confirm(
            strict_client, smtp, outbox, demo.slug, n, targets=["kr-unification"], message=copy
        )
    held = [i for i, state, _ in letters(session) if state == DeliveryState.held]
    assert len(held) == 2
    csrf = signed_in(strict_client, organiser.email, organiser.password)
    base = f"/admin/petitions/{demo.slug}/delivery"
    page = strict_client.get(base)
    for letter_id in held:
        assert f'data-testid="held-{letter_id}"' in page.text
    assert page.text.count("Send them to safety, not back to the North.") >= 2  # to read first

    released = strict_client.post(
        f"{base}/letters/{held[0]}/release", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert released.headers["location"] == f"{base}?done=released"
    discarded = strict_client.post(
        f"{base}/letters/{held[1]}/discard", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert discarded.headers["location"] == f"{base}?done=discarded"
    states = {i: (state, reason) for i, state, reason in letters(session)}
    # Released, it keeps to the official's daily cap (two letters went today); discarded, never.
    assert states[held[0]][0] == DeliveryState.held and "daily-cap" in (states[held[0]][1] or "")
    assert states[held[1]] == (DeliveryState.cancelled, "discarded by an organiser")
    assert [e.actor_email for e in audited(session, "letter.release")] == [organiser.email]
    assert [e.actor_email for e in audited(session, "letter.discard")] == [organiser.email]
    page = strict_client.get(f"{base}?done=discarded")
    assert "No letter is held for review." in page.text
    assert (
        "Over the official&#39;s daily limit of letters: goes on"
        in strict_client.get(f"{base}/log").text
    )

    again = strict_client.post(f"{base}/letters/{held[1]}/release", data={"csrf_token": csrf})
    assert again.status_code == 409
    assert "This letter is no longer held for review" in again.text
    assert len(audited(session, "letter.release")) == 1


# --- who may -----------------------------------------------------------------------------------


@pytest.fixture
def delivered(
    client: TestClient, demo: Petition, session: Session, settings: Settings, admin: Account
) -> int:
    """The demo petition delivered (one official by post); the id of the postal letter."""
    confirmed_signatures(session, settings, demo)
    by_post(session, "eu-hr-vp")
    response = client.post(
        f"/api/v1/admin/petitions/{demo.slug}/deliveries", json={}, headers=admin.headers
    )
    assert response.status_code == 201
    [postal] = [e["id"] for e in response.json()["letters"] if e["channel"] == "postal"]
    return int(postal)


def pages(slug: str, letter_id: int) -> list[str]:
    base = f"/admin/petitions/{slug}/delivery"
    return [
        base,
        f"{base}/confirm",
        f"{base}/preview",
        f"{base}/log",
        f"{base}/1/annex.csv",
        f"{base}/1/manifest.json",
        f"{base}/letters/{letter_id}/letter.pdf",
    ]


def forms(slug: str, letter_id: int) -> list[tuple[str, dict[str, Any]]]:
    base = f"/admin/petitions/{slug}/delivery"
    return [
        (base, {"delivered": "1", "annex_fields": ["postcode"]}),
        *[(f"{base}/letters/{letter_id}/{a}", {}) for a in ("posted", "release", "discard")],
    ]


def state(session: Session) -> tuple[Any, ...]:
    session.expire_all()
    made = session.exec(select(PetitionDelivery.number)).all()
    actions = [
        a for a in session.exec(select(AuditEntry.action)) if a.startswith(("letter", "petition"))
    ]
    return (sorted(made), letters(session), sorted(actions))


def test_an_organiser_of_another_campaign_gets_404_for_every_delivery_page_and_form(
    client: TestClient, demo: Petition, session: Session, delivered: int, make_account: Any
) -> None:
    theirs = make_petition(session, status=PetitionStatus.open)
    slug = session.exec(select(Campaign.slug).where(Campaign.id == theirs.campaign_id)).one()
    outsider = make_account("organiser", [slug])
    before = state(session)
    csrf = signed_in(client, outsider.email, outsider.password)
    for path in pages(demo.slug, delivered):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Page not found" in response.text
        assert demo.text("en")["title"] not in response.text
    for path, data in forms(demo.slug, delivered):
        response = client.post(path, data={**data, "csrf_token": csrf})
        assert response.status_code == 404, path
    assert client.get(f"/admin/petitions/{theirs.slug}/delivery").status_code == 200  # theirs
    assert state(session) == before


def test_forms_without_their_csrf_token_are_refused_and_signed_out_visitors_sign_in(
    client: TestClient, demo: Petition, session: Session, delivered: int, admin: Account
) -> None:
    before = state(session)
    for path in pages(demo.slug, delivered):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login?next=")
    for path, data in forms(demo.slug, delivered):
        response = client.post(path, data=data, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/admin/login"

    signed_in(client, admin.email, admin.password)
    with TestClient(client.app) as attacker:
        attacker_csrf = signed_in(attacker, admin.email, admin.password)
    for path, data in forms(demo.slug, delivered):
        for csrf in (None, "", "0" * 64, attacker_csrf):
            sent = data if csrf is None else {**data, "csrf_token": csrf}
            response = client.post(path, data=sent, follow_redirects=False)
            assert response.status_code == 403, (path, csrf)
            assert "This form has expired" in response.text
    assert state(session) == before
    page = client.get(f"/admin/petitions/{demo.slug}/delivery")
    assert page.status_code == 200
    csrf = csrf_of(page.text)  # still signed in
    # A letter of one petition under another's address is not found, even for an admin.
    other = make_petition(session, status=PetitionStatus.open)
    elsewhere = f"/admin/petitions/{other.slug}/delivery/letters/{delivered}"
    assert client.get(f"{elsewhere}/letter.pdf").status_code == 404
    assert client.post(f"{elsewhere}/posted", data={"csrf_token": csrf}).status_code == 404
    assert (
        client.get(f"/admin/petitions/{demo.slug}/delivery/letters/{delivered}/x").status_code
        == 404
    )
    assert (
        client.post(
            f"/admin/petitions/{demo.slug}/delivery/letters/{delivered}/burn",
            data={"csrf_token": csrf},
        ).status_code
        == 404
    )
    assert state(session) == before
