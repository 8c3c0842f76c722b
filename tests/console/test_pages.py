"""The console's pages over the API's services: who sees what, what each form changes, and
that each change is refused without its CSRF token, and audited with it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, insert, update
from sqlmodel import Session, col, select

from app.audit.models import AuditEntry
from app.auth.models import User
from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.db import utcnow
from app.email import outbox
from app.email.models import OutboxMessage, OutboxStatus
from app.petitions.models import Petition, PetitionStatus
from app.signatures import service as signature_service
from app.signatures.models import (
    Signature,
    SignatureCreate,
    SignatureHourlyTally,
    SignatureTally,
)
from tests.conftest import ROOT, Account
from tests.console.helpers import csrf_of, signed_in
from tests.factories import make_petition, signer


@pytest.fixture
def petition(session: Session) -> Petition:
    return make_petition(session, status=PetitionStatus.draft, locales=("en",), goal=4)


def campaign_of(session: Session, petition: Petition) -> Campaign:
    campaign = session.get(Campaign, petition.campaign_id)
    assert campaign is not None
    return campaign


@pytest.fixture
def organiser(make_account: Any, session: Session, petition: Petition) -> Account:
    account: Account = make_account("organiser", [campaign_of(session, petition).slug])
    return account


def audit_actions(session: Session) -> list[str]:
    return list(session.exec(select(AuditEntry.action).order_by(col(AuditEntry.id))))


def reload(session: Session, petition: Petition) -> Petition:
    """The petition as the database has it now (a select: session.get could answer from the
    session's identity map)."""
    return session.exec(select(Petition).where(Petition.id == petition.id)).one()


# --- who sees what ----------------------------------------------------------------------------


def test_an_organiser_sees_their_campaigns_petitions_and_only_those(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    other = make_petition(session, status=PetitionStatus.open)
    signed_in(client, organiser.email, organiser.password)
    dashboard = client.get("/admin/")
    assert petition.text("en")["title"] in dashboard.text
    assert other.text("en")["title"] not in dashboard.text
    assert campaign_of(session, other).slug not in dashboard.text

    assert client.get(f"/admin/petitions/{petition.slug}").status_code == 200
    other_campaign = campaign_of(session, other).slug
    for path in (
        f"/admin/petitions/{other.slug}",
        f"/admin/petitions/{other.slug}/edit",
        f"/admin/petitions/{other.slug}/lifecycle/close",
        f"/admin/campaigns/{other_campaign}/petitions/new",
        "/admin/petitions/no-such-petition",
        "/admin/no-such-page",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Page not found" in response.text
        assert other.text("en")["title"] not in response.text


def test_an_organiser_cannot_change_another_campaign(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    other = make_petition(session, status=PetitionStatus.open)
    csrf = signed_in(client, organiser.email, organiser.password)
    other_campaign = campaign_of(session, other).slug
    posts: list[tuple[str, dict[str, str]]] = [
        (f"/admin/petitions/{other.slug}/lifecycle/close", {}),
        (f"/admin/petitions/{other.slug}/edit", {"goal": "5", "translations.en.title": "Mine"}),
        (f"/admin/campaigns/{other_campaign}/petitions", {"slug": "taken-over", "goal": "5"}),
    ]
    for path, data in posts:
        response = client.post(path, data={**data, "csrf_token": csrf})
        assert response.status_code == 404, path
    assert reload(session, other).status == PetitionStatus.open
    assert reload(session, other).goal == other.goal
    assert session.exec(select(Petition).where(Petition.slug == "taken-over")).first() is None
    assert audit_actions(session) == ["console.sign_in"]


def test_only_admins_create_campaigns(
    client: TestClient, session: Session, organiser: Account, admin: Account
) -> None:
    csrf = signed_in(client, organiser.email, organiser.password)
    assert "/admin/campaigns/new" not in client.get("/admin/").text
    assert client.get("/admin/campaigns/new").status_code == 403
    response = client.post(
        "/admin/campaigns",
        data={"csrf_token": csrf, "slug": "new-one", "translations.en.name": "New"},
    )
    assert response.status_code == 403
    assert session.exec(select(Campaign).where(Campaign.slug == "new-one")).first() is None


def test_admins_see_every_campaign(
    client: TestClient, session: Session, petition: Petition, admin: Account
) -> None:
    other = make_petition(session, status=PetitionStatus.open)
    signed_in(client, admin.email, admin.password)
    dashboard = client.get("/admin/")
    assert petition.text("en")["title"] in dashboard.text
    assert other.text("en")["title"] in dashboard.text
    assert client.get(f"/admin/petitions/{other.slug}").status_code == 200


# --- CSRF -------------------------------------------------------------------------------------


def test_every_form_without_its_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, session: Session, petition: Petition, admin: Account
) -> None:
    signed_in(client, admin.email, admin.password)
    slug = campaign_of(session, petition).slug
    posts: list[tuple[str, dict[str, str]]] = [
        (f"/admin/petitions/{petition.slug}/lifecycle/open", {}),
        (f"/admin/petitions/{petition.slug}/edit", {"goal": "9", "translations.en.title": "X"}),
        (
            f"/admin/campaigns/{slug}/petitions",
            {
                "slug": "forged",
                "goal": "5",
                "default_locale": "en",
                "translations.en.title": "T",
                "translations.en.summary": "S",
                "translations.en.body": "B",
            },
        ),
        (
            "/admin/campaigns",
            {"slug": "forged", "default_locale": "en", "translations.en.name": "N"},
        ),
        ("/admin/language", {"locale": "ko"}),
        ("/admin/logout", {}),
    ]
    with TestClient(client.app) as attacker:  # a session of the attacker's own
        attacker_csrf = signed_in(attacker, admin.email, admin.password)
    for path, data in posts:
        for token in (None, "", "0" * 64, attacker_csrf):
            sent = {**data} if token is None else {**data, "csrf_token": token}
            response = client.post(path, data=sent, follow_redirects=False)
            assert response.status_code == 403, (path, token)
            assert "This form has expired" in response.text
    fresh = reload(session, petition)
    assert fresh.status == PetitionStatus.draft
    assert fresh.goal == petition.goal
    assert fresh.translations == petition.translations
    assert session.exec(select(Petition).where(Petition.slug == "forged")).first() is None
    assert session.exec(select(Campaign).where(Campaign.slug == "forged")).first() is None
    assert session.exec(select(User.locale).where(User.email == admin.email)).one() is None
    assert client.get("/admin/").status_code == 200  # still signed in
    assert audit_actions(session) == ["console.sign_in", "console.sign_in"]


# --- the dashboard --------------------------------------------------------------------------------


def confirm(session: Session, settings: Settings, petition: Petition, **who: Any) -> None:
    """A signature made and confirmed through the signatures service."""
    signature_service.sign(
        session,
        petition=petition,
        data=SignatureCreate.model_validate(signer(**who)),
        locale="en",
        settings=settings,
    )
    session.commit()
    signature = session.exec(select(Signature).order_by(col(Signature.id).desc())).first()
    assert signature is not None and signature.id is not None
    token = signature_service.confirmation_token(settings, signature_id=signature.id)
    signature_service.confirm(session, token=token, settings=settings)
    session.commit()


@pytest.fixture
def statements(client: TestClient) -> Iterator[list[str]]:
    """Every SQL statement the application runs meanwhile."""
    seen: list[str] = []
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]

    def remember(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", remember)
    yield seen
    event.remove(engine, "before_cursor_execute", remember)


def test_the_dashboard_shows_counts_pace_and_goal_from_the_tallies(
    client: TestClient,
    session: Session,
    settings: Settings,
    make_account: Any,
    statements: list[str],
) -> None:
    open_petition = make_petition(session, status=PetitionStatus.open, goal=4)
    organiser = make_account("organiser", [campaign_of(session, open_petition).slug])
    confirm(session, settings, open_petition, country="UA")
    confirm(session, settings, open_petition, country="KR")
    # One confirmed two days ago: in the total, not in the last 24 hours.
    old = utcnow() - timedelta(days=2)
    session.add(
        SignatureHourlyTally(
            petition_id=open_petition.id or 0,
            hour=old.replace(minute=0, second=0, microsecond=0),
            shard=0,
            count=1,
        )
    )
    session.add(SignatureTally(petition_id=open_petition.id or 0, country="GB", shard=99, count=1))
    session.commit()

    signed_in(client, organiser.email, organiser.password)
    statements.clear()
    page = client.get("/admin/").text
    card = page[page.index(f'data-testid="petition-{open_petition.slug}"') :]
    assert re.search(r'data-testid="confirmed">3<', card)
    assert re.search(r'data-testid="this-hour">2<', card)
    assert re.search(r'data-testid="last-24-hours">2<', card)
    assert "3 of 4 confirmed (75%)" in card
    assert '<progress max="4" value="3"' in card
    assert "Open" in card
    # Never a read of the signature table itself: only its tallies.
    assert any("signature_hourly_tally" in s for s in statements)
    scans = [s for s in statements if re.search(r"\bsignature\b(?!_)", s, re.IGNORECASE)]
    assert scans == []


def test_the_dashboard_shows_the_mail_queue(
    client: TestClient, session: Session, admin: Account
) -> None:
    for n in range(3):
        outbox.enqueue(session, kind="test", payload={"n": n}, recipient="a@example.org")
    session.commit()
    long_ago = utcnow() - timedelta(hours=2)
    first = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).first()
    assert first is not None
    session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == first.id)
        .values(status=OutboxStatus.failed)
    )
    session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == (first.id or 0) + 1)
        .values(next_attempt_at=long_ago)
    )
    signed_in(client, admin.email, admin.password)
    page = client.get("/admin/").text
    assert re.search(r'data-testid="queue-pending">2<', page)
    assert re.search(r'data-testid="queue-failed">1<', page)
    oldest = re.search(r'data-testid="queue-oldest">([^<]*)<', page)
    assert oldest is not None
    assert oldest[1].startswith("due since ")
    assert str(long_ago.year) in oldest[1]


def test_the_mail_queue_counts_stop_at_their_cap(session: Session) -> None:
    for n in range(5):
        outbox.enqueue(session, kind="test", payload={"n": n})
    session.commit()
    state = outbox.queue_state(session, cap=3)
    assert (state.pending, state.failed, state.cap) == (3, 0, 3)
    assert state.waiting_since is not None
    later = outbox.queue_state(session, now=utcnow() - timedelta(hours=1))
    assert later.pending == 5
    assert later.waiting_since is None  # nothing was due an hour ago


def test_the_mail_queue_state_reads_indexes_not_the_outbox(
    session: Session, engine: Engine
) -> None:
    """The outbox keeps a row for every e-mail ever sent: its state must come from the partial
    indexes of pending and failed messages, whatever the planner's statistics."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL plan")
    now = utcnow()
    session.execute(
        insert(OutboxMessage),
        [
            {"kind": "test", "payload": {}, "status": status, "next_attempt_at": now}
            for status in ["sent"] * 5000 + ["pending"] * 10 + ["failed"] * 3
        ],
    )
    ran: list[tuple[str, Any]] = []
    with Session(engine) as reading:
        connection = reading.connection()

        def remember(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
            if not statement.startswith("EXPLAIN"):
                ran.append((statement, parameters))

        event.listen(connection, "before_cursor_execute", remember)
        state = outbox.queue_state(reading)
        event.remove(connection, "before_cursor_execute", remember)
        assert (state.pending, state.failed) == (10, 3)
        # Seq scans cost too much to choose while an index can answer: the plan shows whether
        # one can.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plans = [
            "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {sql}", params))
            for sql, params in ran
        ]
        reading.rollback()
    assert len(plans) == 3
    for plan in plans:
        assert "Seq Scan" not in plan, plan
    assert any("ix_outbox_failed" in plan for plan in plans), plans
    assert sum("ix_outbox_pending" in plan for plan in plans) == 2, plans


# --- a petition -----------------------------------------------------------------------------------


def test_the_petition_page_shows_numbers_chart_countries_and_officials(
    client: TestClient, session: Session, settings: Settings, make_account: Any
) -> None:
    open_petition = make_petition(session, status=PetitionStatus.open, goal=10)
    organiser = make_account("organiser", [campaign_of(session, open_petition).slug])
    confirm(session, settings, open_petition, country="UA")
    confirm(session, settings, open_petition, country="UA")
    confirm(session, settings, open_petition, country="KR")
    signed_in(client, organiser.email, organiser.password)
    page = client.get(f"/admin/petitions/{open_petition.slug}").text
    assert re.search(r'data-testid="confirmed">3<', page)
    assert "3 of 10 confirmed (30%)" in page
    assert re.search(r"<th scope=\"row\">Ukraine</th><td class=\"num\">2</td>", page)
    assert re.search(r"<th scope=\"row\">South Korea</th><td class=\"num\">1</td>", page)
    assert "Minister of Tests" in page  # the official it is addressed to
    # Today's row of the chart has the three, as a full bar.
    today = re.findall(r'<td class="num">(\d+)</td>\s*<td class="bar-cell">', page)
    assert len(today) == 14 and today[-1] == "3" and set(today[:-1]) == {"0"}
    assert 'width="100.0%"' in page
    assert f'href="http://testserver/petitions/{open_petition.slug}"' in page


def lifecycle(client: TestClient, csrf: str, petition: Petition, action: str) -> Any:
    confirm_page = client.get(f"/admin/petitions/{petition.slug}/lifecycle/{action}")
    assert confirm_page.status_code == 200, action
    return client.post(
        f"/admin/petitions/{petition.slug}/lifecycle/{action}",
        data={"csrf_token": csrf_of(confirm_page.text)},
        follow_redirects=False,
    )


def test_lifecycle_buttons_ask_then_move_the_petition_and_are_audited(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    csrf = signed_in(client, organiser.email, organiser.password)
    page = client.get(f"/admin/petitions/{petition.slug}").text
    assert "/lifecycle/open" in page and "/lifecycle/close" not in page

    # Looking at the confirmation changes nothing.
    ask = client.get(f"/admin/petitions/{petition.slug}/lifecycle/open")
    assert "Open this petition for signing?" in ask.text
    assert reload(session, petition).status == PetitionStatus.draft

    steps = [
        ("open", PetitionStatus.open, False),
        ("pause", PetitionStatus.open, True),
        ("resume", PetitionStatus.open, False),
        ("close", PetitionStatus.closed, False),
        ("reopen", PetitionStatus.open, False),
        ("close", PetitionStatus.closed, False),
        ("archive", PetitionStatus.archived, False),
    ]
    for action, status, paused in steps:
        response = lifecycle(client, csrf, petition, action)
        assert response.status_code == 303, action
        assert response.headers["location"] == f"/admin/petitions/{petition.slug}?done={action}"
        fresh = reload(session, petition)
        assert (fresh.status, fresh.signing_paused) == (status, paused), action
    final = client.get(f"/admin/petitions/{petition.slug}?done=archive").text
    assert "The petition is archived." in final
    assert "/lifecycle/" not in final
    entries = list(
        session.exec(
            select(AuditEntry)
            .where(col(AuditEntry.action).in_(["petition.status", "petition.signing"]))
            .order_by(col(AuditEntry.id))
        )
    )
    assert [(e.details["to"], e.actor_email) for e in entries] == [
        ("open", organiser.email),
        ("paused", organiser.email),
        ("open", organiser.email),
        ("closed", organiser.email),
        ("open", organiser.email),
        ("closed", organiser.email),
        ("archived", organiser.email),
    ]


def test_a_button_pressed_on_a_stale_page_is_refused(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    csrf = signed_in(client, organiser.email, organiser.password)
    assert lifecycle(client, csrf, petition, "open").status_code == 303
    # Someone pressed "open" in another tab before: nothing happens twice.
    again = client.post(
        f"/admin/petitions/{petition.slug}/lifecycle/open", data={"csrf_token": csrf}
    )
    assert again.status_code == 409
    assert "status has changed" in again.text
    unknown = client.post(
        f"/admin/petitions/{petition.slug}/lifecycle/explode", data={"csrf_token": csrf}
    )
    assert unknown.status_code == 409
    # And asking for a move the petition does not offer goes back to its page.
    stale = client.get(
        f"/admin/petitions/{petition.slug}/lifecycle/archive", follow_redirects=False
    )
    assert stale.status_code == 303
    assert reload(session, petition).status == PetitionStatus.open
    assert audit_actions(session).count("petition.status") == 1


def edit_values(petition: Petition) -> dict[str, str]:
    values = {"goal": str(petition.goal)}
    for locale, text in petition.translations.items():
        for name, value in text.items():
            values[f"translations.{locale}.{name}"] = value
    return values


def test_texts_are_edited_side_by_side_and_a_language_added(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    signed_in(client, organiser.email, organiser.password)
    form = client.get(f"/admin/petitions/{petition.slug}/edit")
    assert form.status_code == 200
    for locale in ("en", "ko", "uk"):  # one column per language, the existing filled in
        assert f'name="translations.{locale}.title"' in form.text
    assert f'value="{petition.text("en")["title"]}"' in form.text
    data = {
        **edit_values(petition),
        "csrf_token": csrf_of(form.text),
        "goal": "100,000",
        "translations.en.body": "First line.\r\n\r\nSecond paragraph.",
        "translations.ko.title": "강제 송환 반대",
        "translations.ko.summary": "요약",
        "translations.ko.body": "본문",
    }
    response = client.post(
        f"/admin/petitions/{petition.slug}/edit", data=data, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/admin/petitions/{petition.slug}?done=saved"
    fresh = reload(session, petition)
    assert fresh.goal == 100_000
    assert fresh.translations["ko"] == {
        "title": "강제 송환 반대",
        "summary": "요약",
        "body": "본문",
    }
    # Browsers send CRLF; the texts keep the newlines public pages split paragraphs on.
    assert fresh.translations["en"]["body"] == "First line.\n\nSecond paragraph."
    [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "petition.update"))
    assert entry.actor_email == organiser.email
    assert entry.details["goal"] == {"from": 4, "to": 100_000}
    assert entry.details["translations"] == {"changed": ["en", "ko"], "removed": []}

    # Removing a language (never the default one).
    form = client.get(f"/admin/petitions/{petition.slug}/edit")
    assert 'name="remove.ko"' in form.text and 'name="remove.en"' not in form.text
    data = {**edit_values(fresh), "csrf_token": csrf_of(form.text), "remove.ko": "1"}
    response = client.post(
        f"/admin/petitions/{petition.slug}/edit", data=data, follow_redirects=False
    )
    assert response.status_code == 303
    assert set(reload(session, petition).translations) == {"en"}


def test_edit_errors_are_shown_next_to_their_fields_and_nothing_is_saved(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    csrf = signed_in(client, organiser.email, organiser.password)
    data = {
        **edit_values(petition),
        "csrf_token": csrf,
        "goal": "lots",
        "translations.en.title": "",
        "translations.uk.title": "Лише заголовок",  # a language begun but not finished
    }
    response = client.post(f"/admin/petitions/{petition.slug}/edit", data=data)
    assert response.status_code == 422
    page = response.text
    assert re.search(r'id="f-goal-error">Enter a whole number, like 100,000.<', page)
    assert re.search(r'id="f-translations-en-title-error">Fill this in.<', page)
    assert re.search(r'id="f-translations-uk-summary-error">Fill this in.<', page)
    assert 'aria-invalid="true"' in page
    assert 'href="#f-goal"' in page  # the summary at the top links to the field
    assert 'value="Лише заголовок"' in page  # what was typed stays
    assert 'value="lots"' in page
    fresh = reload(session, petition)
    assert fresh.translations == petition.translations and fresh.goal == petition.goal
    assert "petition.update" not in audit_actions(session)


def test_a_new_petition_is_created_as_a_draft_in_the_languages_written(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    slug = campaign_of(session, petition).slug
    signed_in(client, organiser.email, organiser.password)
    form = client.get(f"/admin/campaigns/{slug}/petitions/new")
    assert form.status_code == 200
    data = {
        "csrf_token": csrf_of(form.text),
        "slug": "second-petition",
        "goal": "5000",
        "default_locale": "ko",
        "translations.ko.title": "두 번째 청원",
        "translations.ko.summary": "요약",
        "translations.ko.body": "본문",
        "translations.en.title": "Second petition",
        "translations.en.summary": "Summary",
        "translations.en.body": "Body",
    }
    response = client.post(f"/admin/campaigns/{slug}/petitions", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/admin/petitions/second-petition?done=created"
    created = session.exec(select(Petition).where(Petition.slug == "second-petition")).one()
    assert created.status == PetitionStatus.draft
    assert created.campaign_id == petition.campaign_id
    assert created.default_locale == "ko" and set(created.translations) == {"en", "ko"}
    [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "petition.create"))
    assert entry.actor_email == organiser.email
    assert "created as a draft" in client.get(response.headers["location"]).text


def test_new_petition_errors_come_back_next_to_their_fields(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    slug = campaign_of(session, petition).slug
    csrf = signed_in(client, organiser.email, organiser.password)
    base = {
        "csrf_token": csrf,
        "goal": "10",
        "default_locale": "en",
        "translations.en.title": "T",
        "translations.en.summary": "S",
        "translations.en.body": "B",
    }
    cases = [
        ({"slug": "Not A Slug"}, "f-slug-error", "Use lower-case letters"),
        ({"slug": petition.slug}, "f-slug-error", "A petition already uses this short name"),
        ({"slug": "fine", "goal": "0"}, "f-goal-error", "Enter a number of at least 1."),
        (
            {"slug": "fine", "default_locale": "uk"},
            "f-default_locale-error",
            "The default language needs its texts",
        ),
        (
            {"slug": "fine", "translations.en.title": "", "translations.en.summary": ""}
            | {"translations.en.body": ""},
            "error",
            "Write the texts in at least one language.",
        ),
    ]
    for change, error_id, message in cases:
        response = client.post(f"/admin/campaigns/{slug}/petitions", data={**base, **change})
        assert response.status_code == 422, change
        if error_id == "error":
            assert f'<p class="error">{message}' in response.text, change
        else:
            assert re.search(rf'id="{error_id}">{message}', response.text), (change, response.text)
    petitions = list(session.exec(select(Petition.slug)))
    assert petitions == [petition.slug]


def test_an_admin_creates_a_campaign_then_its_first_petition(
    client: TestClient, session: Session, admin: Account
) -> None:
    signed_in(client, admin.email, admin.password)
    form = client.get("/admin/campaigns/new")
    assert form.status_code == 200
    assert 'aria-current="page">New campaign<' in form.text
    data = {
        "csrf_token": csrf_of(form.text),
        "slug": "kursk-soldiers",
        "default_locale": "en",
        "translations.en.name": "No forced return",
        "translations.en.description": "Protect the two soldiers.",
        "translations.uk.name": "Ні примусовому поверненню",
        "currency.EUR": "1",
        "currency.KRW": "1",
    }
    response = client.post("/admin/campaigns", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert (
        response.headers["location"]
        == "/admin/campaigns/kursk-soldiers/petitions/new?done=campaign-created"
    )
    campaign = session.exec(select(Campaign).where(Campaign.slug == "kursk-soldiers")).one()
    assert set(campaign.currencies) == {"EUR", "KRW"}
    assert campaign.translations["uk"] == {"name": "Ні примусовому поверненню", "description": ""}
    assert "campaign.create" in audit_actions(session)
    page = client.get(response.headers["location"]).text
    assert "The campaign was created." in page and "No forced return" in page

    taken = client.post("/admin/campaigns", data=data)
    assert taken.status_code == 422
    assert re.search(r'id="f-slug-error">A campaign already uses this short name', taken.text)
    assert 'id="f-currency-EUR" name="currency.EUR" value="1" checked' in taken.text


# --- the console's language -----------------------------------------------------------------------


def test_the_console_speaks_the_language_each_person_chose(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    # Before any choice: the browser's language.
    client.headers["accept-language"] = "uk-UA,uk;q=0.9"
    login = client.get("/admin/login")
    assert '<html lang="uk">' in login.text
    csrf = signed_in(client, organiser.email, organiser.password)
    assert '<html lang="uk">' in client.get("/admin/").text

    response = client.post(
        "/admin/language",
        data={"csrf_token": csrf, "locale": "ko", "next": f"/admin/petitions/{petition.slug}"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/petitions/{petition.slug}"
    page = client.get(f"/admin/petitions/{petition.slug}").text
    assert '<html lang="ko">' in page
    assert "대시보드" in page
    user = session.exec(select(User).where(User.email == organiser.email)).one()
    assert user.locale == "ko"
    assert "user.locale" in audit_actions(session)

    # The choice follows the person to another browser.
    with TestClient(client.app) as elsewhere:
        elsewhere.headers["accept-language"] = "en"
        signed_in(elsewhere, organiser.email, organiser.password)
        assert '<html lang="ko">' in elsewhere.get("/admin/").text


def test_console_pages_carry_no_inline_script_or_style(
    client: TestClient, session: Session, petition: Petition, admin: Account
) -> None:
    slug = campaign_of(session, petition).slug
    signed_in(client, admin.email, admin.password)
    pages = [
        "/admin/login",
        "/admin/",
        f"/admin/petitions/{petition.slug}",
        f"/admin/petitions/{petition.slug}/edit",
        f"/admin/petitions/{petition.slug}/lifecycle/open",
        f"/admin/campaigns/{slug}/petitions/new",
        "/admin/campaigns/new",
        "/admin/nowhere",
        f"/admin/campaigns/{slug}/officials",
        f"/admin/campaigns/{slug}/officials/new",
        f"/admin/campaigns/{slug}/groups/new",
        f"/admin/petitions/{petition.slug}/officials",
        f"/admin/petitions/{petition.slug}/updates",
        f"/admin/campaigns/{slug}/donations",
        "/admin/accounts",
        "/admin/accounts/new",
        "/admin/tokens",
        "/admin/abuse-rules",
        "/admin/audit",
    ]
    client.cookies.delete("chorus_console_login")
    for path in pages:
        html = client.get(path).text
        assert "<html" in html, path
        assert "<script" not in html, path
        assert "<style" not in html, path
        assert not re.search(r"\son[a-z]+=", html), path
        assert not re.search(r"\sstyle=", html), path
    css = client.get("/admin/static/console.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


def placeholders(entry: str | dict[str, str]) -> set[str]:
    """The {names} of a string, or of every plural form of one (each must have them all)."""
    forms = entry.values() if isinstance(entry, dict) else [entry]
    found = [set(re.findall(r"\{\w+\}", form)) for form in forms]
    assert all(names == found[0] for names in found), entry
    return found[0]


def test_every_console_string_exists_in_korean_and_ukrainian_with_its_placeholders() -> None:
    english = json.loads((ROOT / "app/locales/console.en.json").read_text("utf-8"))
    for locale in ("ko", "uk"):
        other = json.loads((ROOT / f"app/locales/console.{locale}.json").read_text("utf-8"))
        assert set(other) == set(english), locale
        for key, text in english.items():
            assert placeholders(other[key]) == placeholders(text), (locale, key)
            if isinstance(text, dict):  # the plural forms each language needs (CLDR)
                needed = {"ko": {"other"}, "uk": {"one", "few", "many", "other"}}[locale]
                assert set(other[key]) == needed, (locale, key)
