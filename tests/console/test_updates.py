"""Updates to supporters in the console: the number of people shown before sending is the
number the updates service queues; refused texts come back next to their fields; nothing is
queued before the organiser presses "Send"."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from app.audit.models import AuditEntry
from app.campaigns.models import Campaign
from app.email import service as email_service
from app.email.models import OutboxMessage, SuppressionReason
from app.petitions.models import Petition, PetitionStatus
from app.signatures.models import SignatureStatus
from app.updates.models import PetitionUpdate
from tests.conftest import Account
from tests.console.helpers import csrf_of, signed_in
from tests.factories import make_petition
from tests.updates.test_updates import add_signers


@pytest.fixture
def petition(session: Session) -> Petition:
    return make_petition(session, status=PetitionStatus.open, locales=("en", "ko"))


@pytest.fixture
def organiser(make_account: Any, session: Session, petition: Petition) -> Account:
    slug = session.exec(select(Campaign.slug).where(Campaign.id == petition.campaign_id)).one()
    account: Account = make_account("organiser", [slug])
    return account


def queued(session: Session) -> int:
    return session.exec(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.kind == "petition_update")
    ).one()


TEXTS = {
    "translations.en.subject": "We delivered the petition",
    "translations.en.body": "Dear friends,\r\n\r\nthe petition is in their hands.",
    "translations.ko.subject": "청원을 전달했습니다",
    "translations.ko.body": "함께해 주셔서 감사합니다.",
}


def test_the_organiser_sees_how_many_will_get_it_reviews_then_sends(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    add_signers(session, petition, 4, prefix="yes")
    add_signers(session, petition, 2, prefix="no", consent_updates=False)
    add_signers(session, petition, 3, prefix="pending", status=SignatureStatus.pending)
    email_service.suppress(session, email="yes0@example.org", reason=SuppressionReason.unsubscribed)
    session.commit()
    other = make_petition(session, status=PetitionStatus.open)
    add_signers(session, other, 5, prefix="other")

    signed_in(client, organiser.email, organiser.password)
    page = client.get(f"/admin/petitions/{petition.slug}/updates")
    assert page.status_code == 200
    assert re.search(r'data-testid="audience">Sent now, it would go to 3 people', page.text)
    assert "No update has been sent yet." in page.text

    review = client.post(
        f"/admin/petitions/{petition.slug}/updates/review",
        data={**TEXTS, "csrf_token": csrf_of(page.text)},
    )
    assert review.status_code == 200, review.text
    assert "Send this update?" in review.text
    assert ">Send to 3 people<" in review.text
    assert "청원을 전달했습니다" in review.text
    assert queued(session) == 0  # nothing is sent by looking
    assert session.exec(select(PetitionUpdate)).first() is None

    # "Change the text" goes back to the form with the texts as they were.
    back = client.post(
        f"/admin/petitions/{petition.slug}/updates",
        data={**TEXTS, "csrf_token": csrf_of(review.text), "step": "edit"},
    )
    assert back.status_code == 200
    assert 'value="We delivered the petition"' in back.text
    assert queued(session) == 0

    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', review.text))
    fields["step"] = "send"
    sent = client.post(
        f"/admin/petitions/{petition.slug}/updates", data=fields, follow_redirects=False
    )
    assert sent.status_code == 303, sent.text
    assert queued(session) == 3
    [record] = session.exec(select(PetitionUpdate))
    assert record.recipients == 3
    assert record.translations["en"]["body"] == "Dear friends,\n\nthe petition is in their hands."
    assert set(record.translations) == {"en", "ko"}
    [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "update.send"))
    assert entry.actor_email == organiser.email and entry.details["recipients"] == 3

    after = client.get(sent.headers["location"]).text
    assert "The update is queued for 3 people" in after
    assert re.search(r"<th scope=\"row\">We delivered the petition</th>", after)
    assert organiser.email in after


def test_refused_updates_come_back_next_to_their_fields_and_nothing_is_queued(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    add_signers(session, petition, 2)
    csrf = signed_in(client, organiser.email, organiser.password)
    review = f"/admin/petitions/{petition.slug}/updates/review"
    only_korean = {k: v for k, v in TEXTS.items() if ".ko." in k}
    cases: list[tuple[dict[str, str], str]] = [
        (
            only_korean,
            r'id="f-translations-en"[^>]*>\s*<legend>[^<]*</legend>\s*'
            r'<p class="error">Write the update in the petition&#39;s default language',
        ),
        (
            {**TEXTS, "translations.en.subject": ""},
            r'id="f-translations-en-subject-error">Fill this in.',
        ),
        ({}, r'<p class="error">Write the texts in at least one language.'),
    ]
    for data, expected in cases:
        for path in (review, f"/admin/petitions/{petition.slug}/updates"):
            response = client.post(path, data={**data, "csrf_token": csrf, "step": "send"})
            assert response.status_code == 422, (path, data)
            assert re.search(expected, response.text), (path, response.text)
    assert queued(session) == 0
    assert session.exec(select(PetitionUpdate)).first() is None
    assert list(session.exec(select(AuditEntry.action).order_by(col(AuditEntry.id)))) == [
        "console.sign_in"
    ]


def test_send_pressed_twice_sends_the_update_once(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    add_signers(session, petition, 2)
    signed_in(client, organiser.email, organiser.password)
    page = client.get(f"/admin/petitions/{petition.slug}/updates")
    review = client.post(
        f"/admin/petitions/{petition.slug}/updates/review",
        data={**TEXTS, "csrf_token": csrf_of(page.text)},
    )
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', review.text))
    assert fields["send_key"]
    fields["step"] = "send"
    path = f"/admin/petitions/{petition.slug}/updates"
    first = client.post(path, data=fields, follow_redirects=False)
    second = client.post(path, data=fields, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert queued(session) == 2
    assert len(session.exec(select(PetitionUpdate)).all()) == 1

    # A new review is a new update: the organiser meant to send it again.
    again = client.post(
        f"/admin/petitions/{petition.slug}/updates/review",
        data={**TEXTS, "csrf_token": csrf_of(page.text)},
    )
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', again.text))
    fields["step"] = "send"
    assert client.post(path, data=fields, follow_redirects=False).status_code == 303
    assert queued(session) == 4
