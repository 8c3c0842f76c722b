"""Who may reach the console's officials, updates, donations and admin pages: an organiser of
another campaign gets 404 for every page and form of this one, organisers get 403 for the
admins' pages, and a form sent without its CSRF token is refused with 403 and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from app.abuse.models import AbuseRule, RuleAction, RuleKind
from app.audit.models import AuditEntry
from app.auth.models import ApiToken, TokenKind, User
from app.campaigns.models import Campaign
from app.email.models import OutboxMessage
from app.petitions import service as petition_service
from app.petitions.models import Petition, PetitionStatus
from app.targets.models import Target, TargetGroup
from app.updates.models import PetitionUpdate
from tests.conftest import Account
from tests.console.helpers import signed_in
from tests.factories import make_petition
from tests.updates.test_updates import add_signers


@pytest.fixture
def petition(session: Session) -> Petition:
    petition = make_petition(session, status=PetitionStatus.open)
    add_signers(session, petition, 2)
    return petition


@pytest.fixture
def slug(session: Session, petition: Petition) -> str:
    return session.exec(select(Campaign.slug).where(Campaign.id == petition.campaign_id)).one()


@pytest.fixture
def official(session: Session, petition: Petition) -> Target:
    [target] = petition_service.targets(session, petition_id=petition.id or 0)
    return target


@pytest.fixture
def group(session: Session, petition: Petition) -> TargetGroup:
    group = TargetGroup(campaign_id=petition.campaign_id, key="ministries", names={"en": "M"})
    session.add(group)
    session.commit()
    return group


@pytest.fixture
def admin_rows(session: Session, admin: Account) -> tuple[int, int, int]:
    """An account, an API token and an abuse rule that admins' forms could change."""
    account = session.exec(select(User).where(User.email == admin.email)).one()
    token = session.exec(select(ApiToken).where(ApiToken.user_id == account.id)).one()
    rule = AbuseRule(kind=RuleKind.domain, value="spam.example", action=RuleAction.block)
    session.add(rule)
    session.commit()
    return account.id or 0, token.id or 0, rule.id or 0


def campaign_pages(slug: str, petition: Petition, official: Target) -> list[str]:
    return [
        f"/admin/campaigns/{slug}/officials",
        f"/admin/campaigns/{slug}/officials/new",
        f"/admin/officials/{official.id}/edit",
        f"/admin/officials/{official.id}/retire",
        f"/admin/campaigns/{slug}/groups/new",
        f"/admin/campaigns/{slug}/groups/ministries",
        f"/admin/petitions/{petition.slug}/officials",
        f"/admin/petitions/{petition.slug}/updates",
        f"/admin/campaigns/{slug}/donations",
    ]


def campaign_forms(
    slug: str, petition: Petition, official: Target
) -> list[tuple[str, dict[str, str]]]:
    update = {
        "translations.en.subject": "Forged",
        "translations.en.body": "Forged",
        "step": "send",
    }
    official_fields = {
        "key": "forged",
        "name": "Forged",
        "country": "GB",
        "language": "en",
        "delivery_channel": "email",
        "email": "forged@example.org",
    }
    return [
        (f"/admin/campaigns/{slug}/officials", official_fields),
        (f"/admin/officials/{official.id}/edit", {**official_fields, "key": official.key}),
        (f"/admin/officials/{official.id}/retire", {}),
        (f"/admin/campaigns/{slug}/groups", {"key": "forged", "names.en": "Forged"}),
        (f"/admin/campaigns/{slug}/groups/ministries", {"names.en": "Forged"}),
        (f"/admin/petitions/{petition.slug}/officials", {}),
        (f"/admin/petitions/{petition.slug}/updates/review", update),
        (f"/admin/petitions/{petition.slug}/updates", update),
    ]


ADMIN_PAGES = ["/admin/accounts", "/admin/accounts/new", "/admin/tokens", "/admin/abuse-rules"]
ADMIN_PAGES += ["/admin/audit"]


def admin_forms(account_id: int, token_id: int, rule_id: int) -> list[tuple[str, dict[str, str]]]:
    return [
        (
            "/admin/accounts",
            {"email": "forged@example.org", "password": "a long enough password", "role": "admin"},
        ),
        (f"/admin/accounts/{account_id}", {"role": "admin", "is_active": "1"}),
        ("/admin/tokens", {"name": "forged"}),
        (f"/admin/tokens/{token_id}/revoke", {}),
        ("/admin/abuse-rules", {"kind": "domain", "value": "forged.example", "action": "block"}),
        (f"/admin/abuse-rules/{rule_id}/remove", {}),
    ]


def state(session: Session) -> tuple[Any, ...]:
    """Everything these forms could change."""
    session.expire_all()

    def count(model: Any) -> int:
        return session.exec(select(func.count()).select_from(model)).one()

    return (
        [(t.key, t.name, t.retired_at, t.group_id) for t in session.exec(select(Target))],
        [(g.key, g.names) for g in session.exec(select(TargetGroup))],
        count(PetitionUpdate),
        count(OutboxMessage),
        [(u.email, u.role, u.is_active) for u in session.exec(select(User).order_by(col(User.id)))],
        [
            (t.name, t.revoked_at)
            for t in session.exec(select(ApiToken).where(ApiToken.kind == TokenKind.api))
        ],
        [(r.value, r.action) for r in session.exec(select(AbuseRule))],
        [a for a in session.exec(select(AuditEntry.action)) if a != "console.sign_in"],
    )


def test_an_organiser_of_another_campaign_gets_404_for_every_page_and_form(
    client: TestClient,
    session: Session,
    petition: Petition,
    slug: str,
    official: Target,
    group: TargetGroup,
    make_account: Any,
) -> None:
    theirs = make_petition(session, status=PetitionStatus.open)
    their_slug = session.exec(select(Campaign.slug).where(Campaign.id == theirs.campaign_id)).one()
    outsider = make_account("organiser", [their_slug])
    before = state(session)
    csrf = signed_in(client, outsider.email, outsider.password)
    for path in campaign_pages(slug, petition, official):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Page not found" in response.text
        assert "Minister of Tests" not in response.text
        assert petition.text("en")["title"] not in response.text
    for path, data in campaign_forms(slug, petition, official):
        response = client.post(path, data={**data, "csrf_token": csrf})
        assert response.status_code == 404, path
    assert state(session) == before
    # Their own campaign's pages answer.
    assert client.get(f"/admin/campaigns/{their_slug}/officials").status_code == 200


def test_organisers_get_403_for_the_admins_pages(
    client: TestClient,
    session: Session,
    slug: str,
    admin_rows: tuple[int, int, int],
    make_account: Any,
) -> None:
    organiser = make_account("organiser", [slug])
    before = state(session)
    csrf = signed_in(client, organiser.email, organiser.password)
    nav = client.get("/admin/").text
    for path in ADMIN_PAGES:
        assert f'href="{path}"' not in nav  # not offered
        response = client.get(path)
        assert response.status_code == 403, path
        assert "Not allowed" in response.text
    for path, data in admin_forms(*admin_rows):
        response = client.post(path, data={**data, "csrf_token": csrf})
        assert response.status_code == 403, path
    assert client.get(f"/admin/accounts/{admin_rows[0]}").status_code == 403
    assert state(session) == before


def test_every_new_form_without_its_csrf_token_is_refused_and_changes_nothing(
    client: TestClient,
    session: Session,
    petition: Petition,
    slug: str,
    official: Target,
    group: TargetGroup,
    admin: Account,
    admin_rows: tuple[int, int, int],
) -> None:
    before = state(session)
    signed_in(client, admin.email, admin.password)
    with TestClient(client.app) as attacker:
        attacker_csrf = signed_in(attacker, admin.email, admin.password)
    forms = [
        *campaign_forms(slug, petition, official),
        *admin_forms(*admin_rows),
    ]
    for path, data in forms:
        for csrf in (None, "", "0" * 64, attacker_csrf):
            sent = data if csrf is None else {**data, "csrf_token": csrf}
            response = client.post(path, data=sent, follow_redirects=False)
            assert response.status_code == 403, (path, csrf)
            assert "This form has expired" in response.text
    assert state(session) == before
    assert client.get("/admin/").status_code == 200  # still signed in


def test_signed_out_visitors_are_sent_to_sign_in_and_see_no_data(
    client: TestClient, petition: Petition, slug: str, official: Target, group: TargetGroup
) -> None:
    for path in [*campaign_pages(slug, petition, official), *ADMIN_PAGES]:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login?next=")
    for path, data in campaign_forms(slug, petition, official):
        response = client.post(path, data=data, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/admin/login"
