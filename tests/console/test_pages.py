"""The console's pages over the API's services: who sees what, what each form changes, and
that each change is refused without its CSRF token, and audited with it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, update
from sqlmodel import Session, col, select

from app.audit.models import AuditEntry
from app.auth.models import User
from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.db import utcnow
from app.email import service as email_service
from app.email.models import OutboxMessage, OutboxStatus
from app.petitions.models import Petition, PetitionStatus
from app.signatures import service as signature_service
from app.signatures.models import (
    Signature,
    SignatureCreate,
    SignatureHourlyTally,
    SignatureTally,
)
from tests.conftest import Account
from tests.console.helpers import signed_in
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
    fresh = session.get(Petition, petition.id)
    assert fresh is not None
    return fresh


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
        email_service.enqueue(session, kind="test", payload={"n": n}, recipient="a@example.org")
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
        email_service.enqueue(session, kind="test", payload={"n": n})
    session.commit()
    state = email_service.queue_state(session, cap=3)
    assert (state.pending, state.failed, state.cap) == (3, 0, 3)
    assert state.waiting_since is not None
    later = email_service.queue_state(session, now=utcnow() - timedelta(hours=1))
    assert later.pending == 5
    assert later.waiting_since is None  # nothing was due an hour ago
