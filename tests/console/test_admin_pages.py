"""The admins' pages of the console: accounts, API tokens, abuse rules and the audit log, each
over the service the admin API calls (so the same rules hold and the same audit entries land)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.abuse.models import AbuseRule, RuleAction, RuleKind
from app.audit.models import AuditEntry
from app.auth.models import ApiToken, Role, TokenKind, User
from app.auth.security import verify_password
from app.core.db import utcnow
from tests.conftest import Account
from tests.console.helpers import csrf_of, signed_in
from tests.factories import audited, make_campaign


def user(session: Session, email: str) -> User:
    return session.exec(select(User).where(User.email == email)).one()


# --- accounts -------------------------------------------------------------------------------------


def test_an_admin_creates_an_organiser_of_some_campaigns(
    client: TestClient, session: Session, admin: Account
) -> None:
    ours, theirs = make_campaign(session), make_campaign(session)
    session.commit()
    signed_in(client, admin.email, admin.password)
    form = client.get("/admin/accounts/new")
    assert form.status_code == 200
    data = {
        "csrf_token": csrf_of(form.text),
        "email": "Olena@Example.org",
        "name": "Olena",
        "password": "a long enough password",
        "role": "organiser",
        f"campaign.{ours.slug}": "1",
    }
    response = client.post("/admin/accounts", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text
    created = user(session, "olena@example.org")
    assert created.role == Role.organiser and created.name == "Olena"
    assert verify_password("a long enough password", created.password_hash)
    [entry] = audited(session, "user.create")
    assert entry.actor_email == admin.email
    assert entry.details == {"role": "organiser", "campaigns": [ours.slug]}
    listing = client.get(response.headers["location"]).text
    assert "The account was created." in listing
    row = re.search(rf'data-testid="account-{created.id}">(.*?)</tr>', listing, re.S)
    assert row is not None and ours.slug in row[1] and theirs.slug not in row[1]

    # The new organiser signs in to the console and sees their campaign only.
    with TestClient(client.app) as theirs_client:
        signed_in(theirs_client, "olena@example.org", "a long enough password")
        assert theirs_client.get(f"/admin/campaigns/{ours.slug}/officials").status_code == 200
        assert theirs_client.get(f"/admin/campaigns/{theirs.slug}/officials").status_code == 404


def test_account_errors_come_back_next_to_their_fields_without_the_password(
    client: TestClient, session: Session, admin: Account
) -> None:
    csrf = signed_in(client, admin.email, admin.password)
    base = {"csrf_token": csrf, "email": "new@example.org", "role": "organiser"}
    cases = [
        ({"password": "short"}, "f-password-error", "Use at least 12 characters."),
        (
            {"email": "not-an-address", "password": "a long enough password"},
            "f-email-error",
            "Enter a valid e-mail address",
        ),
        (
            {"email": admin.email, "password": "a long enough password"},
            "f-email-error",
            "An account with this e-mail address exists already.",
        ),
    ]
    for change, error_id, message in cases:
        response = client.post("/admin/accounts", data={**base, **change})
        assert response.status_code == 422, change
        assert re.search(rf'id="{error_id}">{re.escape(message)}', response.text), response.text
        assert (
            "a long enough password" not in response.text and 'value="short"' not in response.text
        )
    assert session.exec(select(User).where(User.email == "new@example.org")).first() is None
    assert audited(session, "user.create") == []


def test_a_role_change_or_deactivation_ends_the_accounts_sessions(
    client: TestClient, session: Session, admin: Account, make_account: Any
) -> None:
    campaign = make_campaign(session)
    session.commit()
    organiser = make_account("organiser", [campaign.slug])
    target = user(session, organiser.email)
    assert client.get("/api/v1/admin/me", headers=organiser.headers).status_code == 200
    login = client.post(
        "/api/v1/auth/token", data={"username": organiser.email, "password": organiser.password}
    )
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    with TestClient(client.app) as theirs:
        signed_in(theirs, organiser.email, organiser.password)

        csrf = signed_in(client, admin.email, admin.password)
        form = client.get(f"/admin/accounts/{target.id}")
        assert f'name="campaign.{campaign.slug}" value="1" checked' in form.text
        assert 'name="is_active" value="1" checked' in form.text
        promote = {
            "csrf_token": csrf,
            "name": "",
            "role": "admin",
            "is_active": "1",
            f"campaign.{campaign.slug}": "1",
        }
        saved = client.post(f"/admin/accounts/{target.id}", data=promote, follow_redirects=False)
        assert saved.status_code == 303, saved.text
        session.refresh(target)
        assert target.role == Role.admin
        assert client.get("/api/v1/admin/me", headers=bearer).status_code == 401  # signed out
        assert client.get("/api/v1/admin/me", headers=organiser.headers).status_code == 200

        deactivate = {k: v for k, v in promote.items() if k != "is_active"}
        client.post(f"/admin/accounts/{target.id}", data=deactivate, follow_redirects=False)
        session.refresh(target)
        assert target.is_active is False
        assert client.get("/api/v1/admin/me", headers=organiser.headers).status_code == 401
        assert theirs.get("/admin/", follow_redirects=False).status_code == 303  # to sign in
    changes = [e.details for e in audited(session, "user.update")]
    assert changes[0]["role"] == "admin" and changes[1]["is_active"] is False
    assert all(e.actor_email == admin.email for e in audited(session, "user.update"))


# --- API tokens -----------------------------------------------------------------------------------


def test_a_token_is_shown_once_works_on_the_api_and_is_revoked(
    client: TestClient, session: Session, admin: Account
) -> None:
    csrf = signed_in(client, admin.email, admin.password)
    refused = client.post(
        "/admin/tokens", data={"csrf_token": csrf, "name": "", "expires_in_days": "0"}
    )
    assert refused.status_code == 422
    assert re.search(r'id="f-name-error">Fill this in.', refused.text)
    assert re.search(r'id="f-expires_in_days-error">Enter a number of at least 1.', refused.text)

    issued = client.post(
        "/admin/tokens",
        data={"csrf_token": csrf, "name": "nightly export", "expires_in_days": "30"},
    )
    assert issued.status_code == 200
    found = re.search(r'data-testid="issued-token">(chorus_[^<]+)<', issued.text)
    assert found is not None
    token = found[1]
    assert (
        client.get("/api/v1/admin/me", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )
    listing = client.get("/admin/tokens").text
    assert token not in listing and token[:13] in listing and "nightly export" in listing
    record = session.exec(select(ApiToken).where(ApiToken.name == "nightly export")).one()
    assert record.kind == TokenKind.api and record.expires_at is not None

    revoked = client.post(
        f"/admin/tokens/{record.id}/revoke", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert revoked.status_code == 303
    assert (
        client.get("/api/v1/admin/me", headers={"Authorization": f"Bearer {token}"}).status_code
        == 401
    )
    assert [e.actor_email for e in audited(session, "token.create")] == [admin.email]
    assert [e.subject for e in audited(session, "token.revoke")] == [f"token:{record.id}"]
    assert "The token was revoked" in client.get("/admin/tokens?done=revoked").text


# --- abuse rules ----------------------------------------------------------------------------------


def test_abuse_rules_are_added_refused_and_removed(
    client: TestClient, session: Session, admin: Account
) -> None:
    csrf = signed_in(client, admin.email, admin.password)
    rule = {"csrf_token": csrf, "kind": "domain", "value": "@Spam.Example", "action": "block"}
    added = client.post("/admin/abuse-rules", data=rule, follow_redirects=False)
    assert added.status_code == 303, added.text
    [stored] = session.exec(select(AbuseRule))
    assert (stored.kind, stored.value, stored.action) == (
        RuleKind.domain,
        "spam.example",
        RuleAction.block,
    )
    assert "spam.example" in client.get("/admin/abuse-rules").text

    again = client.post("/admin/abuse-rules", data=rule)
    assert again.status_code == 422
    assert re.search(r'id="f-value-error">There is already a rule for this value', again.text)
    bad_ip = client.post("/admin/abuse-rules", data={**rule, "kind": "ip", "value": "1.2.3"})
    assert bad_ip.status_code == 422
    assert re.search(r'id="f-value-error">Enter an IP address', bad_ip.text)
    ip = client.post(
        "/admin/abuse-rules",
        data={**rule, "kind": "ip", "value": "203.0.113.7", "action": "allow"},
        follow_redirects=False,
    )
    assert ip.status_code == 303
    hashed = session.exec(select(AbuseRule).where(AbuseRule.kind == RuleKind.ip)).one()
    assert hashed.value != "203.0.113.7"  # kept as its hash, as the API does

    removed = client.post(
        f"/admin/abuse-rules/{stored.id}/remove", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert removed.status_code == 303
    assert session.exec(select(AbuseRule.id)).all() == [hashed.id]
    assert [len(audited(session, a)) for a in ("abuse.rule.create", "abuse.rule.delete")] == [
        2,
        1,
    ]
    gone = client.post(f"/admin/abuse-rules/{stored.id}/remove", data={"csrf_token": csrf})
    assert gone.status_code == 404


# --- the audit log --------------------------------------------------------------------------------


def test_the_audit_log_filters_by_action_person_campaign_and_days(
    client: TestClient, session: Session, admin: Account, make_account: Any
) -> None:
    ours, other = make_campaign(session), make_campaign(session)
    session.commit()
    organiser = make_account("organiser", [ours.slug])
    for n, (action, campaign_id, who) in enumerate(
        [
            ("petition.status", ours.id, organiser.email),
            ("petition.update", ours.id, admin.email),
            ("target.create", other.id, admin.email),
            ("petition.status", other.id, organiser.email),
        ]
    ):
        session.add(
            AuditEntry(
                action=action,
                subject=f"thing:{n}",
                campaign_id=campaign_id,
                actor_email=who,
                details={"n": n, "name": "Мар'яна <b>"},
                created_at=utcnow() - timedelta(days=3 - n),
            )
        )
    session.commit()
    signed_in(client, admin.email, admin.password)

    def subjects(query: str) -> list[str]:
        page = client.get(f"/admin/audit?{query}")
        assert page.status_code == 200, page.text
        return re.findall(r"<td>(thing:\d)</td>", page.text)

    assert subjects("") == ["thing:3", "thing:2", "thing:1", "thing:0"]
    assert subjects("action=petition.") == ["thing:3", "thing:1", "thing:0"]
    assert subjects(f"actor={organiser.email.upper()}") == ["thing:3", "thing:0"]
    assert subjects(f"campaign={ours.slug}") == ["thing:1", "thing:0"]
    today = utcnow().date()
    since = (today - timedelta(days=1)).isoformat()
    assert subjects(f"since={since}") == ["thing:3", "thing:2"]
    assert subjects(f"until={(today - timedelta(days=2)).isoformat()}") == ["thing:1", "thing:0"]
    assert subjects(f"action=petition.&campaign={other.slug}") == ["thing:3"]
    page = client.get("/admin/audit").text
    assert "Мар&#39;яна &lt;b&gt;" in page  # details shown as text, never as markup

    bad = client.get("/admin/audit?since=yesterday")
    assert bad.status_code == 422
    assert re.search(r'id="f-since-error">Enter a day like 2026-11-30.', bad.text)
    assert client.get("/admin/audit?campaign=no-such").status_code == 422


def test_the_audit_log_pages_back_keeping_its_filters(
    client: TestClient, session: Session, admin: Account
) -> None:
    for n in range(55):
        session.add(AuditEntry(action="petition.status", subject=f"page:{n}", details={}))
    session.commit()
    signed_in(client, admin.email, admin.password)
    first = client.get("/admin/audit?action=petition.").text
    assert first.count('data-testid="audit-') == 50
    older = re.search(r'<a href="(/admin/audit\?[^"]+)">Older entries</a>', first)
    assert older is not None and "action=petition." in older[1]
    second = client.get(older[1].replace("&amp;", "&")).text
    assert re.findall(r"<td>(page:\d+)</td>", second) == [f"page:{n}" for n in range(4, -1, -1)]
    assert "Older entries" not in second and "Newest entries" in second


def test_the_api_and_the_console_refuse_an_address_the_same_way(
    client: TestClient, admin: Account
) -> None:
    """One rule in the auth service: the API's problem names the field the console shows."""
    response = client.post(
        "/api/v1/admin/users",
        json={"email": "not-an-address", "password": "a long enough password"},
        headers=admin.headers,
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["field"], error["type"]) == ("email", "email_invalid")
