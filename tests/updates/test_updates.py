"""Updates to supporters: who gets them, in which language, unsubscribing, bounces, throttling."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, insert, update
from sqlmodel import Session, col, select

from app.audit.models import AuditEntry
from app.campaigns.models import Campaign
from app.core.addresses import normalise_email
from app.core.config import Settings
from app.core.db import utcnow
from app.core.tokens import make_token
from app.email import service as email_service
from app.email.models import OutboxMessage, OutboxStatus, Suppression, SuppressionReason
from app.petitions.models import Petition, PetitionStatus
from app.signatures.models import Signature, SignatureStatus
from app.updates import service as update_service
from app.updates.models import PetitionUpdate
from tests.conftest import Account, Mailbox, body_text
from tests.factories import make_petition, signer

Outbox = Callable[..., int]

UPDATE = {
    "en": {
        "subject": "We delivered the petition",
        "body": "Dear friends,\nthe petition is in <b>their</b> hands & on record.\n\n"
        "Thank you for standing with us.",
    },
    "ko": {
        "subject": "청원을 전달했습니다",
        "body": "청원을 관계 기관에 전달했습니다.\n\n함께해 주셔서 감사합니다.",
    },
}


# --- helpers ---------------------------------------------------------------------------------


def organiser_of(make_account: Any, session: Session, petition: Petition) -> Account:
    campaign = session.get(Campaign, petition.campaign_id)
    assert campaign is not None
    account: Account = make_account("organiser", campaigns=[campaign.slug])
    return account


def sign_up(
    client: TestClient,
    smtp: Mailbox,
    outbox: Outbox,
    petition: Petition,
    people: list[dict[str, Any]],
) -> None:
    """Sign through the API; confirm (with the link from the e-mail) those not marked
    `"confirm": False`."""
    wanted = []
    for person in people:
        data = {k: v for k, v in person.items() if k != "confirm"}
        response = client.post(f"/api/v1/petitions/{petition.slug}/signatures", json=data)
        assert response.status_code == 202, response.text
        wanted.append((data["email"], person.get("confirm", True)))
    outbox()
    smtp.wait_for(len(people))
    for address, confirm in wanted:
        if not confirm:
            continue
        [message] = [
            m for m in smtp.messages if m["To"].addresses[0].addr_spec.lower() == address.lower()
        ]
        link = next(line for line in body_text(message).split() if "/signatures/confirm/" in line)
        token = link.split("/signatures/confirm/", 1)[1].split("?", 1)[0]
        response = client.post("/api/v1/signatures/confirm", json={"token": token})
        assert response.status_code == 200, response.text
    smtp.clear()


def add_signers(
    session: Session, petition: Petition, count: int, *, prefix: str = "bulk", **overrides: Any
) -> None:
    """Confirmed, consenting signers inserted directly (much faster than the API)."""
    now = utcnow()
    rows = []
    for n in range(count):
        email = f"{prefix}{n}@example.org"
        row = {
            "petition_id": petition.id,
            "name": f"Signer {n}",
            "email": email,
            "email_normalised": normalise_email(email),
            "country": "UA",
            "consent_updates": True,
            "locale": "en",
            "status": SignatureStatus.confirmed,
            "created_at": now,
            "confirmed_at": now,
            "confirmation_sends": 1,
        }
        row.update(overrides)
        rows.append(row)
    session.execute(insert(Signature), rows)
    session.commit()


def send(
    client: TestClient,
    account: Account,
    petition: Petition,
    translations: dict[str, Any] | None = None,
) -> Any:
    return client.post(
        f"/api/v1/admin/petitions/{petition.slug}/updates",
        json={"translations": translations or UPDATE},
        headers=account.headers,
    )


def make_due_now(session: Session) -> None:
    session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.status) == OutboxStatus.pending)
        .values(next_attempt_at=utcnow())
    )
    session.commit()


def update_messages(session: Session) -> list[OutboxMessage]:
    return list(
        session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "petition_update")
            .order_by(col(OutboxMessage.id))
        )
    )


def link(message: EmailMessage, marker: str) -> str:
    return next(line for line in body_text(message).split() if marker in line)


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def signature_of(session: Session, email: str) -> Signature:
    return session.exec(
        select(Signature).where(Signature.email_normalised == normalise_email(email))
    ).one()


def suppressed(session: Session) -> dict[str, str]:
    return {s.email_normalised: s.reason for s in session.exec(select(Suppression))}


@pytest.fixture
def rate(app: FastAPI) -> Iterator[Callable[[int], Settings]]:
    """Run the app with another UPDATE_SEND_RATE_PER_MINUTE for this test."""
    original: Settings = app.state.settings

    def set_rate(per_minute: int) -> Settings:
        changed = original.model_copy(update={"UPDATE_SEND_RATE_PER_MINUTE": per_minute})
        app.state.settings = changed
        return changed

    yield set_rate
    app.state.settings = original


# --- who gets an update, and what it says -----------------------------------------------------


def test_an_update_reaches_only_confirmed_consenting_unsuppressed_signers_in_their_language(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Outbox, make_account: Any
) -> None:
    petition = make_petition(session, locales=("en", "ko", "uk"))
    people = {
        "english": signer(email="english@example.org", locale="en", consent_updates=True),
        "korean": signer(email="korean@example.org", locale="ko", consent_updates=True),
        # No Ukrainian text in the update: the petition's default language instead.
        "ukrainian": signer(email="ukrainian@example.org", locale="uk", consent_updates=True),
        "no_consent": signer(email="quiet@example.org", consent_updates=False),
        "pending": signer(email="pending@example.org", consent_updates=True, confirm=False),
        # Suppressed under its normalised form: every spelling of the mailbox is covered.
        "suppressed": signer(email="Sup.Pressed+news@GoogleMail.com", consent_updates=True),
        "withdrawn": signer(email="withdrawn@example.org", consent_updates=True),
    }
    sign_up(client, smtp, outbox, petition, list(people.values()))
    session.add(
        Suppression(email_normalised="suppressed@gmail.com", reason=SuppressionReason.unsubscribed)
    )
    session.execute(
        update(Signature)
        .where(col(Signature.email) == "withdrawn@example.org")
        .values(status=SignatureStatus.withdrawn)
    )
    session.commit()

    response = send(client, organiser_of(make_account, session, petition), petition)
    assert response.status_code == 201, response.text
    sent = response.json()
    assert sent["recipients"] == 3
    assert sent["first_send_at"] <= sent["last_send_at"]
    assert {m.recipient for m in update_messages(session)} == {
        "english@example.org",
        "korean@example.org",
        "ukrainian@example.org",
    }
    assert all(
        m.payload["update_id"] == sent["id"]
        and m.dedup_key == f"update:{sent['id']}:{m.payload['signature_id']}"
        for m in update_messages(session)
    )

    make_due_now(session)
    outbox()
    smtp.wait_for(3)
    time.sleep(0.1)
    assert len(smtp.messages) == 3
    assert all(m.status == OutboxStatus.sent for m in update_messages(session))

    [korean] = smtp.to("korean@example.org")
    assert korean["Subject"] == "청원을 전달했습니다"
    assert korean["Content-Language"] == "ko"
    assert "함께해 주셔서 감사합니다." in body_text(korean)
    assert "수신 거부" in html_of(korean)
    for address in ("english@example.org", "ukrainian@example.org"):
        [message] = smtp.to(address)
        assert message["Subject"] == "We delivered the petition"
        assert message["Content-Language"] == "en"

    [english] = smtp.to("english@example.org")
    text, html = body_text(english), html_of(english)
    # The organiser's text as written in the plain part; escaped, with its paragraphs, in HTML.
    assert "the petition is in <b>their</b> hands & on record." in text
    assert "<p>Dear friends,<br>the petition is in &lt;b&gt;their&lt;/b&gt; hands &amp; " in html
    assert "<p>Thank you for standing with us.</p>" in html
    assert "<b>their</b>" not in html

    # RFC 8058 one-click unsubscribe, the unsubscribe link and the manage link.
    header = english["List-Unsubscribe"].strip()  # a long header is folded
    assert header.startswith("<http://testserver/unsubscribe/") and header.endswith(">")
    assert english["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = link(english, "/unsubscribe/")
    assert unsubscribe.split("?")[0] == header[1:-1]
    manage = link(english, "/signatures/manage/")
    assert manage.startswith("http://testserver/signatures/manage/")
    assert f'href="{unsubscribe}"' in html and f'href="{manage}"' in html
    for message in smtp.messages:
        assert message["List-Unsubscribe"] and message["List-Unsubscribe-Post"]
        assert "/unsubscribe/" in body_text(message)
        assert "/signatures/manage/" in body_text(message)


def test_the_update_must_be_given_in_the_default_language_and_only_the_petitions_languages(
    client: TestClient, session: Session, make_account: Any
) -> None:
    petition = make_petition(session, locales=("ko", "en"))
    account = organiser_of(make_account, session, petition)

    missing = send(client, account, petition, {"en": UPDATE["en"]})
    assert missing.status_code == 422
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["errors"][0]["field"] == "translations.ko"

    unknown = send(client, account, petition, {"ko": UPDATE["ko"], "fr": UPDATE["en"]})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "translations.fr"

    blank = send(client, account, petition, {"ko": {"subject": " \n ", "body": "Text"}})
    assert blank.status_code == 422
    assert send(client, account, petition, {"en": UPDATE["en"]}).status_code == 422
    assert session.exec(select(PetitionUpdate)).all() == []


def test_a_subject_cannot_inject_headers(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Outbox, make_account: Any
) -> None:
    petition = make_petition(session)
    add_signers(session, petition, 1)
    evil = {"en": {"subject": "News\r\nBcc: victim@example.org", "body": "Text"}}
    assert send(client, organiser_of(make_account, session, petition), petition, evil).status_code
    outbox()
    [message] = smtp.wait_for(1)
    assert message["Subject"] == "News Bcc: victim@example.org"
    assert message["Bcc"] is None
    assert [r for e in smtp.envelopes for r in e.rcpt_tos] == ["bulk0@example.org"]


# --- access -----------------------------------------------------------------------------------


def test_only_the_campaigns_organisers_and_admins_send_and_list_updates(
    client: TestClient, session: Session, make_account: Any, admin: Account
) -> None:
    petition = make_petition(session)
    other = make_petition(session)
    own = organiser_of(make_account, session, petition)
    stranger = organiser_of(make_account, session, other)
    path = f"/api/v1/admin/petitions/{petition.slug}/updates"

    assert client.post(path, json={"translations": UPDATE}).status_code == 401
    assert client.get(path).status_code == 401
    assert (
        client.post(
            path, json={"translations": UPDATE}, headers={"Authorization": "Bearer x"}
        ).status_code
        == 401
    )
    assert send(client, stranger, petition).status_code == 404
    assert client.get(path, headers=stranger.headers).status_code == 404
    assert session.exec(select(PetitionUpdate)).all() == []

    assert send(client, own, petition).status_code == 201
    assert send(client, admin, petition).status_code == 201
    assert client.get(path, headers=own.headers).status_code == 200
    missing = "/api/v1/admin/petitions/no-such-petition/updates"
    assert client.get(missing, headers=admin.headers).status_code == 404


def test_past_updates_are_listed_with_recipients_and_audited(
    client: TestClient, session: Session, make_account: Any
) -> None:
    petition = make_petition(session, locales=("en", "ko"))
    add_signers(session, petition, 3)
    add_signers(session, petition, 2, prefix="quiet", consent_updates=False)
    account = organiser_of(make_account, session, petition)
    first = send(client, account, petition).json()
    add_signers(session, petition, 1, prefix="late")
    second = send(client, account, petition, {"en": {"subject": "Again", "body": "More"}}).json()

    listed = client.get(
        f"/api/v1/admin/petitions/{petition.slug}/updates", headers=account.headers
    ).json()
    assert listed["count"] == 2
    assert [(u["id"], u["recipients"], u["subject"]) for u in listed["data"]] == [
        (second["id"], 4, "Again"),
        (first["id"], 3, "We delivered the petition"),
    ]
    assert listed["data"][1]["locales"] == ["en", "ko"]
    assert listed["data"][0]["sent_by"] == account.email

    entries = session.exec(select(AuditEntry).where(AuditEntry.action == "update.send")).all()
    assert sorted(e.details["update_id"] for e in entries) == sorted([first["id"], second["id"]])
    assert {e.subject for e in entries} == {f"petition:{petition.slug}"}
    assert {e.campaign_id for e in entries} == {petition.campaign_id}
    assert {e.actor_email for e in entries} == {account.email}


# --- unsubscribing ----------------------------------------------------------------------------


def test_unsubscribe_get_changes_nothing_post_and_one_click_post_suppress(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Outbox, make_account: Any
) -> None:
    petition = make_petition(session)
    people = [
        signer(email="button@example.org", consent_updates=True),
        signer(email="oneclick@example.org", consent_updates=True),
        signer(email="stays@example.org", consent_updates=True),
    ]
    sign_up(client, smtp, outbox, petition, people)
    account = organiser_of(make_account, session, petition)
    assert send(client, account, petition).json()["recipients"] == 3
    make_due_now(session)
    outbox()
    smtp.wait_for(3)

    # The page (what a mail scanner fetches) changes nothing.
    [button_mail] = smtp.to("button@example.org")
    page_link = link(button_mail, "/unsubscribe/")
    page = client.get(page_link)
    assert page.status_code == 200
    assert '<form method="post"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert suppressed(session) == {}
    assert signature_of(session, "button@example.org").consent_updates is True

    # Pressing the button unsubscribes.
    done = client.post(page_link)
    assert done.status_code == 200
    assert "You are unsubscribed" in done.text
    assert "/signatures/manage/" in done.text
    assert suppressed(session) == {"button@example.org": SuppressionReason.unsubscribed}
    assert signature_of(session, "button@example.org").consent_updates is False
    again = client.get(page_link)
    assert again.status_code == 200 and "already unsubscribed" in again.text
    assert client.post(page_link).status_code == 200  # twice is harmless

    # A mail program's one-click unsubscribe (RFC 8058) to the List-Unsubscribe address.
    [oneclick_mail] = smtp.to("oneclick@example.org")
    target = oneclick_mail["List-Unsubscribe"].strip().strip("<>")
    response = client.post(
        target,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert suppressed(session)["oneclick@example.org"] == SuppressionReason.unsubscribed
    assert signature_of(session, "oneclick@example.org").consent_updates is False

    # The next update skips both.
    smtp.clear()
    later = send(client, account, petition, {"en": {"subject": "Next", "body": "Next news"}})
    assert later.json()["recipients"] == 1
    make_due_now(session)
    outbox()
    [message] = smtp.wait_for(1)
    time.sleep(0.1)
    assert len(smtp.messages) == 1
    assert message["To"].addresses[0].addr_spec == "stays@example.org"


def cancel_by_unsubscribing(client: TestClient, session: Session, settings: Settings) -> None:
    signature = signature_of(session, "bulk0@example.org")
    assert signature.id is not None
    url = update_service.unsubscribe_url(settings, signature_id=signature.id)
    assert client.post(url).status_code == 200


def cancel_by_withdrawing_consent(client: TestClient, session: Session, settings: Settings) -> None:
    session.execute(update(Signature).values(consent_updates=False))
    session.commit()


def cancel_by_withdrawing(client: TestClient, session: Session, settings: Settings) -> None:
    session.execute(update(Signature).values(status=SignatureStatus.withdrawn))
    session.commit()


def cancel_by_bouncing_elsewhere(client: TestClient, session: Session, settings: Settings) -> None:
    email_service.suppress(session, email="BULK0@example.org", reason=SuppressionReason.bounced)
    session.commit()


@pytest.mark.parametrize(
    "change",
    [
        cancel_by_unsubscribing,
        cancel_by_withdrawing_consent,
        cancel_by_withdrawing,
        cancel_by_bouncing_elsewhere,
    ],
)
def test_a_message_queued_before_the_signer_opted_out_is_cancelled_at_send_time(
    client: TestClient,
    session: Session,
    smtp: Mailbox,
    outbox: Outbox,
    make_account: Any,
    settings: Settings,
    change: Callable[[TestClient, Session, Settings], None],
) -> None:
    petition = make_petition(session)
    add_signers(session, petition, 1)
    assert (
        send(client, organiser_of(make_account, session, petition), petition).json()["recipients"]
        == 1
    )
    change(client, session, settings)
    make_due_now(session)
    outbox()
    assert [m.status for m in update_messages(session)] == [OutboxStatus.cancelled]
    assert smtp.messages == []


def test_bad_and_expired_unsubscribe_links_get_a_clear_page(
    client: TestClient, session: Session, settings: Settings
) -> None:
    petition = make_petition(session)
    add_signers(session, petition, 1)
    signature = signature_of(session, "bulk0@example.org")
    assert signature.id is not None
    expired = make_token(
        settings, purpose=update_service.UNSUBSCRIBE_PURPOSE, subject=signature.id, ttl_seconds=-5
    )
    other_purpose = make_token(
        settings, purpose="confirm-signature", subject=signature.id, ttl_seconds=3600
    )
    cases = [
        ("not-a-token", 400, "not valid"),
        ("a" * 500, 400, "not valid"),
        ("e30.e30", 400, "not valid"),
        (other_purpose, 400, "not valid"),
        (expired, 410, "expired"),
    ]
    for token, status, words in cases:
        for method in ("GET", "POST"):
            response = client.request(method, f"/unsubscribe/{token}")
            assert response.status_code == status, (token, method)
            assert words in response.text
            assert response.headers["content-type"].startswith("text/html")
    assert suppressed(session) == {}

    # A link whose signature was removed since.
    url = update_service.unsubscribe_url(settings, signature_id=signature.id)
    session.delete(signature)
    session.commit()
    gone = client.post(url)
    assert gone.status_code == 410
    assert "no longer exists" in gone.text
    assert suppressed(session) == {}


def test_the_unsubscribe_page_is_in_the_signers_language_with_language_links(
    client: TestClient, session: Session, settings: Settings
) -> None:
    petition = make_petition(session, locales=("en", "ko", "uk"))
    add_signers(session, petition, 1, locale="ko")
    signature = signature_of(session, "bulk0@example.org")
    assert signature.id is not None
    token = update_service.unsubscribe_token(settings, signature_id=signature.id)

    page = client.get(f"/unsubscribe/{token}", headers={"Accept-Language": "en"})
    assert '<html lang="ko">' in page.text
    assert "수신 거부" in page.text
    assert f'href="/unsubscribe/{token}?lang=uk"' in page.text
    assert f'action="/unsubscribe/{token}?lang=ko"' in page.text

    chosen = client.get(f"/unsubscribe/{token}?lang=uk")
    assert '<html lang="uk">' in chosen.text
    assert "Відписатися" in chosen.text

    done = client.post(f"/unsubscribe/{token}?lang=uk")
    assert "Ви відписалися" in done.text
    assert "/signatures/manage/" in done.text and "lang=uk" in done.text

    failed = client.get("/unsubscribe/nonsense", headers={"Accept-Language": "ko-KR,ko;q=0.9"})
    assert failed.status_code == 400
    assert "유효하지 않은 수신 거부 링크입니다" in failed.text


# --- bounces ----------------------------------------------------------------------------------


def test_a_hard_bounce_suppresses_the_address_and_later_updates_skip_it(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Outbox, make_account: Any
) -> None:
    petition = make_petition(session)
    add_signers(
        session,
        petition,
        1,
        email="No.Such.User+news@GMail.com",
        email_normalised=normalise_email("No.Such.User+news@GMail.com"),
    )
    account = organiser_of(make_account, session, petition)
    assert send(client, account, petition).json()["recipients"] == 1

    smtp.refuse_with = "550 5.1.1 no such user"
    outbox()
    [message] = update_messages(session)
    assert message.status == OutboxStatus.failed
    assert suppressed(session) == {"nosuchuser@gmail.com": SuppressionReason.bounced}

    smtp.refuse_with = None
    assert send(client, account, petition).json()["recipients"] == 0


def test_a_temporary_refusal_does_not_suppress(
    client: TestClient, session: Session, smtp: Mailbox, outbox: Outbox, make_account: Any
) -> None:
    petition = make_petition(session)
    add_signers(session, petition, 1)
    assert send(client, organiser_of(make_account, session, petition), petition).status_code == 201
    smtp.refuse_with = "451 4.3.0 try again later"
    outbox(OUTBOX_RETRY_BASE_SECONDS=60)
    [message] = update_messages(session)
    assert message.status == OutboxStatus.pending
    assert suppressed(session) == {}


# --- throttling and scale ---------------------------------------------------------------------


def test_queued_messages_are_spread_out_at_the_configured_rate(
    client: TestClient,
    session: Session,
    smtp: Mailbox,
    outbox: Outbox,
    make_account: Any,
    rate: Callable[[int], Settings],
) -> None:
    rate(6)  # one message every ten seconds
    petition = make_petition(session)
    add_signers(session, petition, 5)
    account = organiser_of(make_account, session, petition)
    before = utcnow()
    first = send(client, account, petition)
    assert first.status_code == 201
    queued = update_messages(session)
    due = [m.next_attempt_at for m in queued]
    assert before - timedelta(seconds=1) <= due[0] <= utcnow()
    assert [d - due[0] for d in due] == [timedelta(seconds=10 * n) for n in range(5)]
    # In the order of signing.
    assert [m.payload["signature_id"] for m in queued] == sorted(
        m.payload["signature_id"] for m in queued
    )
    body = first.json()
    assert body["first_send_at"] == due[0].isoformat().replace("+00:00", "Z")
    assert body["last_send_at"] == due[-1].isoformat().replace("+00:00", "Z")

    # An update queued meanwhile goes out after it, so the rate holds across updates.
    second = send(client, account, petition, {"en": {"subject": "Next", "body": "Next"}})
    later = [m.next_attempt_at for m in update_messages(session)[5:]]
    assert later[0] - due[-1] == timedelta(seconds=10)
    assert [d - later[0] for d in later] == [timedelta(seconds=10 * n) for n in range(5)]
    assert second.json()["last_send_at"] == later[-1].isoformat().replace("+00:00", "Z")

    # The worker sends only what is due: the first message now, the others later.
    assert outbox() == 1
    smtp.wait_for(1)
    statuses = [m.status for m in update_messages(session)]
    assert statuses == [OutboxStatus.sent] + [OutboxStatus.pending] * 9


def test_queueing_is_one_statement_however_many_signers(
    client: TestClient, session: Session, make_account: Any, app: FastAPI
) -> None:
    petition = make_petition(session)
    add_signers(session, petition, 3000)
    add_signers(session, petition, 500, prefix="quiet", consent_updates=False)
    account = organiser_of(make_account, session, petition)

    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = app.state.admin_engine  # the admin API's own pool (app/core/lanes.py)
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = send(client, account, petition)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 201
    assert response.json()["recipients"] == 3000
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO OUTBOX_MESSAGE")]
    assert len(inserts) == 1
    assert len(statements) < 30
    queued = update_messages(session)
    assert len(queued) == 3000
    assert len({m.next_attempt_at for m in queued}) == 3000
    assert len({m.dedup_key for m in queued}) == 3000


def test_a_draft_petition_can_get_an_update_with_nobody_to_send_it_to(
    client: TestClient, session: Session, make_account: Any
) -> None:
    petition = make_petition(session, status=PetitionStatus.draft)
    response = send(client, organiser_of(make_account, session, petition), petition)
    assert response.status_code == 201
    assert response.json()["recipients"] == 0
    assert response.json()["first_send_at"] == response.json()["last_send_at"]
