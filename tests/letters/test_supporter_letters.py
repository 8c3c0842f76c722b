"""Supporters' letters: held until confirmed, then sent to the chosen officials over real SMTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, select

from app.core.config import Settings
from app.email.models import OutboxMessage
from app.letters import duplicates
from app.letters.models import LetterDelivery
from app.main import create_app
from app.petitions.models import Petition
from app.targets.models import DeliveryChannel, Target
from tests.conftest import Account, Mailbox, body_text

PERSONAL = (
    "My grandfather was separated from his family in the war and never saw them again. I grew "
    "up with his stories, which is why I follow what happens to these two young men so closely. "
    "Please do not let them be sent somewhere they will be punished for having survived."
)


def letter_link(message: EmailMessage) -> str:
    for line in body_text(message).splitlines():
        if "/letters/confirm/" in line:
            return line.strip().removeprefix("http://testserver")
    raise AssertionError("no confirmation link in the e-mail")


def write(client: TestClient, slug: str, **data: Any) -> Any:
    body = {
        "name": "Ji-woo Park",
        "email": "jiwoo@example.org",
        "city": "Busan",
        "country": "KR",
        "targets": ["ua-president", "kr-mofa"],
        "message": PERSONAL,
        "locale": "en",
    }
    body.update(data)
    return client.post(f"/api/v1/petitions/{slug}/letters", json=body)


def log(client: TestClient, account: Account, slug: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(
        f"/api/v1/admin/petitions/{slug}/letters", params=params, headers=account.headers
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_a_letter_is_held_until_confirmed_then_sent_with_the_supporter_as_reply_to(
    client: TestClient, demo: Petition, smtp: Mailbox, outbox: Any, admin: Account
) -> None:
    start = client.get(f"/api/v1/petitions/{demo.slug}/letter?lang=en").json()
    assert start["message"].startswith("I am writing about the two North Korean soldiers")
    assert {t["key"] for t in start["targets"]} >= {"ua-president", "kr-mofa", "eu-hr-vp"}

    accepted = write(client, demo.slug)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"status": "pending_confirmation", "held": False, "detail": None}
    outbox()
    [confirmation] = smtp.wait_for(1)
    assert confirmation["To"] == "Ji-woo Park <jiwoo@example.org>"
    assert log(client, admin, demo.slug) == []  # nothing for the officials yet

    link = letter_link(confirmation)
    page = client.get(link)  # what a mail scanner does: nothing is sent
    assert page.status_code == 200 and "<form" in page.text
    outbox()
    assert len(smtp.messages) == 1

    confirmed = client.post(link)
    assert confirmed.status_code == 200
    assert "on its way to 2 officials" in confirmed.text
    assert [e["state"] for e in log(client, admin, demo.slug)] == ["queued", "queued"]
    outbox()
    smtp.wait_for(3)
    to_president = smtp.to("president@ukraine.example")
    to_minister = smtp.to("mofa@korea.example")
    assert len(to_president) == 1 and len(to_minister) == 1
    letter = to_president[0]
    assert letter["Reply-To"] == "Ji-woo Park <jiwoo@example.org>"
    assert parseaddr(str(letter["From"])) == ("Ji-woo Park (via Chorus)", "campaign@example.org")
    text = body_text(letter)
    assert text.startswith("Dear President of Ukraine,")
    assert "My grandfather was separated" in text
    assert "Ji-woo Park\nBusan, South Korea\n" in text
    assert letter["Subject"].startswith("Please protect the two captured")
    entries = log(client, admin, demo.slug)
    assert [e["state"] for e in entries] == ["sent", "sent"]
    assert all(e["sent_at"] and e["kind"] == "supporter" for e in entries)

    # Confirming again sends nothing more.
    again = client.post(
        "/api/v1/letters/confirm", json={"token": link.split("/")[-1].split("?")[0]}
    )
    assert again.json()["status"] == "already_confirmed"
    outbox()
    assert len(smtp.messages) == 3


def test_the_letter_form_on_the_petition_page_works_without_javascript(
    client: TestClient, demo: Petition, smtp: Mailbox, outbox: Any
) -> None:
    page = client.get(f"/petitions/{demo.slug}?lang=uk")
    assert "Напишіть посадовцям" in page.text
    assert "Пишу щодо двох північнокорейських солдатів" in page.text  # the starting text
    # Bad input: the messages stand beside the fields, and what was typed is kept.
    bad = client.post(
        f"/petitions/{demo.slug}/letters",
        data={"locale": "uk", "name": "", "email": "nope", "country": "UA", "message": "short"},
    )
    assert bad.status_code == 422
    assert 'id="le-targets"' in bad.text and "Виберіть принаймні одного посадовця" in bad.text
    assert 'id="le-email"' in bad.text and 'id="le-message"' in bad.text
    assert 'id="le-name"' in bad.text
    good = client.post(
        f"/petitions/{demo.slug}/letters",
        data={
            "locale": "uk",
            "name": "Олена Коваленко",
            "email": "olena@example.org",
            "city": "Львів",
            "country": "UA",
            "targets": ["kr-unification"],
            "message": PERSONAL,
        },
        follow_redirects=False,
    )
    assert good.status_code == 303
    assert client.get(good.headers["location"]).text.count("Перевірте пошту") >= 1
    outbox()
    [confirmation] = smtp.wait_for(1)
    assert confirmation["Subject"].startswith("Підтвердьте ваш лист")


@pytest.fixture
def strict_client(settings: Settings, engine: Any) -> Iterator[TestClient]:
    """An app whose officials get 2 supporter letters a day, and where a letter nearly
    identical to 2 others is held."""
    strict = settings.model_copy(
        update={"LETTER_DAILY_CAP_PER_TARGET": 2, "LETTER_DUPLICATE_LIMIT": 2}
    )
    with TestClient(create_app(strict)) as client:
        yield client


def write_and_confirm(
    client: TestClient, smtp: Mailbox, outbox: Any, slug: str, n: int, **data: Any
) -> dict[str, Any]:
    accepted = write(client, slug, email=f"writer{n}@example.org", **data)
    assert accepted.status_code == 202, accepted.text
    outbox()
    # The newest confirmation e-mail to this writer is the one for this letter.
    confirmation = [m for m in smtp.to(f"writer{n}@example.org") if "/letters/" in body_text(m)][-1]
    token = letter_link(confirmation).split("/")[-1].split("?")[0]
    confirmed = client.post("/api/v1/letters/confirm", json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    result: dict[str, Any] = {**accepted.json(), **confirmed.json()}
    return result


def test_the_daily_cap_holds_letters_for_a_later_day(
    strict_client: TestClient,
    demo: Petition,
    smtp: Mailbox,
    outbox: Any,
    admin: Account,
    session: Session,
) -> None:
    for n in range(3):
        write_and_confirm(
            strict_client,
            smtp,
            outbox,
            demo.slug,
            n,
            targets=["eu-hr-vp"],
            message=f"{PERSONAL} Written by writer number {n} on day one "
            f"{'with a different ending ' * n}",
        )
    outbox()
    assert len(smtp.to("hr-vp@eu.example")) == 2  # the cap
    entries = log(strict_client, admin, demo.slug)
    assert [e["state"] for e in entries] == ["sent", "sent", "held"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert entries[2]["reason"].startswith("daily-cap")
    assert entries[2]["scheduled_on"] == tomorrow

    # The next day, the worker sends it without anyone's help.
    delivery = session.get(LetterDelivery, entries[2]["id"])
    assert delivery is not None and delivery.outbox_id is not None
    queued = session.get(OutboxMessage, delivery.outbox_id)
    assert queued is not None and queued.next_attempt_at.date().isoformat() == tomorrow
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == delivery.outbox_id)  # type: ignore[arg-type]
        .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    session.commit()
    outbox()
    assert len(smtp.to("hr-vp@eu.example")) == 3
    assert log(strict_client, admin, demo.slug)[2]["state"] == "sent"


def test_near_identical_letters_are_held_and_the_supporter_asked_to_personalise(
    strict_client: TestClient, demo: Petition, smtp: Mailbox, outbox: Any, admin: Account
) -> None:
    template = strict_client.get(f"/api/v1/petitions/{demo.slug}/letter?lang=en").json()
    unchanged = template["message"]
    for n in range(2):
        result = write_and_confirm(
            strict_client, smtp, outbox, demo.slug, n, targets=["ua-president"], message=unchanged
        )
        assert result["held"] is False
    # A third copy, with one word changed, is nearly identical to the two before it.
    almost = unchanged.replace("without delay", "without any delay")
    held = write_and_confirm(
        strict_client, smtp, outbox, demo.slug, 2, targets=["ua-mfa"], message=almost
    )
    assert held["held"] is True and "own words" in held["detail"]
    confirmation = smtp.to("writer2@example.org")[0]
    assert "held for review" in body_text(confirmation)
    outbox()
    assert len(smtp.to("president@ukraine.example")) == 2
    assert smtp.to("mfa@ukraine.example") == []
    assert [e["state"] for e in log(strict_client, admin, demo.slug)][-1] == "held"

    # The page asks for a personal letter, beside the text the supporter wrote.
    page = strict_client.post(
        f"/petitions/{demo.slug}/letters",
        data={
            "locale": "en",
            "name": "Sam Lee",
            "email": "writer2@example.org",
            "country": "GB",
            "targets": ["ua-mfa"],
            "message": almost,
        },
    )
    assert page.status_code == 200
    assert 'id="letter-held"' in page.text and "in your own words" in page.text
    assert "without any delay" in page.text
    outbox()  # (that form's own confirmation e-mail goes out before the next letter's)

    # Written again in their own words and confirmed, it replaces the held one and is sent.
    rewritten = write_and_confirm(
        strict_client, smtp, outbox, demo.slug, 2, targets=["ua-mfa"], message=PERSONAL
    )
    assert rewritten["held"] is False
    outbox()
    assert len(smtp.to("mfa@ukraine.example")) == 1
    states = [(e["state"], e["reason"]) for e in log(strict_client, admin, demo.slug)]
    assert ("cancelled", "replaced by a newer letter") in states


def test_an_organiser_can_release_or_discard_a_held_letter(
    strict_client: TestClient, demo: Petition, smtp: Mailbox, outbox: Any, admin: Account
) -> None:
    for n in range(4):
        write_and_confirm(
            strict_client,
            smtp,
            outbox,
            demo.slug,
            n,
            targets=["kr-unification"],
            message="Send them to safety, not back to the North. " * 5,
        )
    held = [e for e in log(strict_client, admin, demo.slug) if e["state"] == "held"]
    assert len(held) == 2
    released = strict_client.post(
        f"/api/v1/admin/letters/{held[0]['id']}/release", headers=admin.headers
    )
    # Released, it still respects the official's daily cap (two letters went out today).
    assert released.status_code == 200
    assert released.json()["reason"].startswith("daily-cap")
    discarded = strict_client.post(
        f"/api/v1/admin/letters/{held[1]['id']}/discard", headers=admin.headers
    )
    assert discarded.json()["state"] == "cancelled"
    again = strict_client.post(
        f"/api/v1/admin/letters/{held[1]['id']}/release", headers=admin.headers
    )
    assert again.status_code == 409
    outbox()
    assert len(smtp.to("unification@korea.example")) == 2
    assert [e["id"] for e in log(strict_client, admin, demo.slug, state="held")] == [held[0]["id"]]


def test_failed_sends_are_retried_and_logged(
    client: TestClient, demo: Petition, smtp: Mailbox, outbox: Any, admin: Account
) -> None:
    accepted = write(client, demo.slug, targets=["ua-president"])
    assert accepted.status_code == 202
    outbox()
    link = letter_link(smtp.wait_for(1)[0])
    client.post(link)
    smtp.refuse_with = "451 4.3.0 mailbox busy, try later"
    outbox()
    [entry] = log(client, admin, demo.slug)
    assert entry["state"] == "queued" and entry["attempts"] == 1
    assert "451" in entry["reason"]
    smtp.refuse_with = None
    import time

    time.sleep(0.3)  # the retry's backoff (OUTBOX_RETRY_BASE_SECONDS is tiny in tests)
    outbox()
    assert len(smtp.to("president@ukraine.example")) == 1
    [entry] = log(client, admin, demo.slug)
    assert entry["state"] == "sent" and entry["attempts"] == 2

    # A permanent refusal fails the letter, with the server's reason.
    write(client, demo.slug, email="second@example.org", targets=["ua-mfa"])
    outbox()
    client.post(letter_link(smtp.to("second@example.org")[0]))
    smtp.refuse_with = "550 5.1.1 no such mailbox"
    outbox()
    failed = log(client, admin, demo.slug, state="failed")
    assert len(failed) == 1 and "550" in failed[0]["reason"]


def test_a_postal_letter_is_printed_not_e_mailed(
    client: TestClient,
    demo: Petition,
    smtp: Mailbox,
    outbox: Any,
    admin: Account,
    session: Session,
) -> None:
    pypdf = pytest.importorskip("pypdf")
    target = session.exec(select(Target).where(Target.key == "eu-hr-vp")).one()
    target.delivery_channel = DeliveryChannel.postal
    session.add(target)
    session.commit()
    write(client, demo.slug, targets=["eu-hr-vp"], name="Олена Коваленко", country="UA")
    outbox()
    client.post(letter_link(smtp.wait_for(1)[0]))
    outbox()
    assert len(smtp.messages) == 1  # only the confirmation: nothing is e-mailed to the target
    [entry] = log(client, admin, demo.slug)
    assert entry["state"] == "queued" and entry["channel"] == "postal"
    printed = client.get(f"/api/v1/admin/letters/{entry['id']}/letter.pdf", headers=admin.headers)
    assert printed.status_code == 200
    assert printed.headers["content-type"] == "application/pdf"
    import io

    text = "".join(
        page.extract_text() for page in pypdf.PdfReader(io.BytesIO(printed.content)).pages
    )
    assert "1 Rue de l'Exemple" in text and "Brussels" in text
    assert "My grandfather was separated" in " ".join(text.split())
    assert "Олена Коваленко" in text
    posted = client.post(f"/api/v1/admin/letters/{entry['id']}/posted", headers=admin.headers)
    assert posted.json()["state"] == "sent" and posted.json()["sent_at"]


def test_a_korean_senders_printed_letter_has_every_address_line(
    client: TestClient,
    demo: Petition,
    smtp: Mailbox,
    outbox: Any,
    admin: Account,
    session: Session,
) -> None:
    # The first text on the page is Hangul: fpdf2's fallback fonts then lost the lines after
    # it (py-pdf/fpdf2#1772), here the sender's e-mail address.
    pypdf = pytest.importorskip("pypdf")
    import io

    target = session.exec(select(Target).where(Target.key == "kr-unification")).one()
    target.delivery_channel = DeliveryChannel.postal
    session.add(target)
    session.commit()
    message = (
        "저는 쿠르스크 지역에서 포로가 된 북한군 병사 두 명의 안전을 걱정하는 시민입니다. "
        "그들이 원하는 대로 한국으로 올 수 있도록 도와주십시오."
    )
    accepted = write(
        client,
        demo.slug,
        name="김민수",
        email="minsu@example.org",
        city="서울",
        country="KR",
        targets=["kr-unification"],
        message=message,
        locale="ko",
    )
    assert accepted.status_code == 202, accepted.text
    outbox()
    client.post(letter_link(smtp.wait_for(1)[0]))
    outbox()
    [entry] = log(client, admin, demo.slug)
    printed = client.get(f"/api/v1/admin/letters/{entry['id']}/letter.pdf", headers=admin.headers)
    assert printed.status_code == 200, printed.text
    pages = pypdf.PdfReader(io.BytesIO(printed.content)).pages
    # (pypdf reads the CJK font's two-byte codes with a NUL before each character.)
    text = "\n".join(page.extract_text() for page in pages).replace("\x00", "")
    lines = {" ".join(line.split()) for line in text.splitlines()}
    sender = ["김민수", "서울", "대한민국", "minsu@example.org"]
    official = target.text(target.language)  # printed as the official's own office writes it
    recipient = [official["name"], official["role"], official["organisation"]]
    postal = (target.postal_address or "").splitlines()
    for line in [*sender, *recipient, *postal]:
        assert line in lines, (line, lines)
    assert "그들이 원하는 대로 한국으로 올 수 있도록 도와주십시오." in " ".join(text.split())


def test_letters_only_go_to_the_petitions_officials(client: TestClient, demo: Petition) -> None:
    response = write(client, demo.slug, targets=["someone-else"])
    assert response.status_code == 422
    assert "someone-else" in response.json()["detail"]


def test_the_signature_tells_copies_from_personal_letters() -> None:
    base = (
        "I am writing about the two North Korean soldiers captured by Ukrainian forces in the "
        "Kursk region in early 2025. Both have said they want to go to South Korea, and Seoul "
        "has said it would accept them. I ask you to make sure they are not handed over."
    )
    near = base.replace("make sure", "ensure")
    apart = base + " " + PERSONAL
    sig = duplicates.signature
    assert duplicates.similarity(sig(base), sig(base)) == 1.0
    assert duplicates.similarity(sig(base), sig(near)) >= duplicates.NEAR_DUPLICATE
    assert duplicates.similarity(sig(base), sig(apart)) < duplicates.NEAR_DUPLICATE
    assert duplicates.similarity(sig(base), sig(PERSONAL)) < 0.2


def test_nobody_can_flood_an_inbox_with_letter_confirmations(
    client: TestClient, demo: Petition, smtp: Mailbox, outbox: Any, settings: Settings
) -> None:
    for n in range(settings.MAX_CONFIRMATION_SENDS + 2):
        response = write(client, demo.slug, email="victim@example.org", message=f"{PERSONAL} {n}")
        assert response.status_code == 202  # the same answer every time
    outbox()
    assert len(smtp.to("victim@example.org")) == settings.MAX_CONFIRMATION_SENDS


def test_bots_get_the_usual_answer_and_their_letters_go_nowhere(
    client: TestClient, demo: Petition, smtp: Mailbox, outbox: Any, admin: Account
) -> None:
    # The letter form's honeypot, filled in: the same page as for a person, but no e-mail.
    bot = client.post(
        f"/petitions/{demo.slug}/letters",
        data={
            "locale": "en",
            "name": "Bot",
            "email": "bot@example.org",
            "country": "GB",
            "targets": ["ua-president"],
            "message": PERSONAL,
            "website": "http://spam.example",
        },
        follow_redirects=False,
    )
    assert bot.status_code == 303
    # A domain an organiser blocked, through the API.
    rule = client.post(
        "/api/v1/admin/abuse/rules",
        json={"kind": "domain", "value": "spam.example.org", "action": "block"},
        headers=admin.headers,
    )
    assert rule.status_code == 201, rule.text
    blocked = write(client, demo.slug, email="x@spam.example.org")
    assert blocked.status_code == 202 and blocked.json()["held"] is False
    outbox()
    assert smtp.messages == []
    assert log(client, admin, demo.slug) == []


def test_concurrent_confirmations_naming_officials_in_any_order_all_go_through(
    live_server: Any, demo: Petition, smtp: Mailbox, outbox: Any, admin: Account
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    orders = [["ua-president", "kr-mofa", "eu-hr-vp"], ["eu-hr-vp", "kr-mofa", "ua-president"]]
    tokens = []
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        for n in range(12):
            body = {
                "name": "Ji-woo Park",
                "email": f"order{n}@example.org",
                "country": "KR",
                "targets": orders[n % 2],
                "message": f"{PERSONAL} Letter {n}.",
                "locale": "en",
            }
            assert http.post(f"/api/v1/petitions/{demo.slug}/letters", json=body).status_code == 202
        outbox()
        for message in smtp.wait_for(12):
            tokens.append(letter_link(message).split("/")[-1].split("?")[0])

        def confirm(token: str) -> int:
            return http.post("/api/v1/letters/confirm", json={"token": token}).status_code

        with ThreadPoolExecutor(12) as pool:
            assert list(pool.map(confirm, tokens)) == [200] * 12


def test_a_supporters_data_download_includes_their_letters(
    client: TestClient, demo: Petition, settings: Settings, session: Session
) -> None:
    from app.rights import service as rights_service
    from app.signatures.models import Signature

    signed = client.post(
        f"/api/v1/petitions/{demo.slug}/signatures",
        json={"name": "Ji-woo Park", "email": "Jiwoo@example.org", "country": "KR"},
    )
    assert signed.status_code == 202
    assert (
        write(client, demo.slug, email="jiwoo@example.org", targets=["kr-mofa"]).status_code == 202
    )
    signature = session.exec(select(Signature)).one()
    assert signature.id is not None
    token = rights_service.manage_token(settings, signature_id=signature.id)
    data = client.post("/api/v1/signatures/manage/export", json={"token": token}).json()
    [letter] = data["letters"]
    assert letter["message"] == PERSONAL and letter["city"] == "Busan"
    assert letter["targets"] == ["Minister of Foreign Affairs of the Republic of Korea"]
    assert letter["status"] == "unconfirmed"


def test_a_caught_near_duplicate_gets_the_answer_of_an_ordinary_one(
    strict_client: TestClient, demo: Petition, smtp: Mailbox, outbox: Any, admin: Account
) -> None:
    """Were a caught (blocked, honeypot) letter answered apart from a held near-duplicate, a
    bot would learn it was caught by sending the campaign's own text."""
    unchanged = strict_client.get(f"/api/v1/petitions/{demo.slug}/letter?lang=en").json()["message"]
    for n in range(2):
        write_and_confirm(
            strict_client, smtp, outbox, demo.slug, n, targets=["ua-president"], message=unchanged
        )
    rule = {"kind": "domain", "value": "caught.example.org", "action": "block"}
    assert strict_client.post(
        "/api/v1/admin/abuse/rules", json=rule, headers=admin.headers
    ).is_success
    person = write(strict_client, demo.slug, email="person@example.org", message=unchanged)
    caught = write(strict_client, demo.slug, email="bot@caught.example.org", message=unchanged)
    assert person.json()["held"] is True
    assert (caught.status_code, caught.json()) == (person.status_code, person.json())

    form = {
        "locale": "en",
        "name": "Sam Lee",
        "country": "GB",
        "targets": ["ua-president"],
        "message": unchanged,
    }
    pages = [
        strict_client.post(f"/petitions/{demo.slug}/letters", data=data, follow_redirects=False)
        for data in (
            {**form, "email": "another@example.org"},
            {**form, "email": "bot@caught.example.org"},
            {**form, "email": "honeypot@example.org", "website": "http://spam.example"},
        )
    ]
    assert [p.status_code for p in pages] == [200, 200, 200]
    assert all('id="letter-held"' in p.text for p in pages)
    outbox()
    assert smtp.to("bot@caught.example.org") == [] and smtp.to("honeypot@example.org") == []
