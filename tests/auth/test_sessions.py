"""Account changes end the sessions signed in before them, and reactivation revives nothing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.auth.models import ApiToken, User
from tests.conftest import Account


def _session_token(client: TestClient, email: str, password: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _user_id(session: Session, email: str) -> int:
    user_id = session.exec(select(User.id).where(User.email == email)).one()
    assert user_id is not None
    return user_id


def _patch(client: TestClient, admin: Account, user_id: int, **changes: Any) -> None:
    response = client.patch(f"/api/v1/admin/users/{user_id}", json=changes, headers=admin.headers)
    assert response.status_code == 200, response.text


def test_a_password_change_ends_the_sessions_signed_in_with_the_old_one(
    client: TestClient, admin: Account, make_account: Any, session: Session
) -> None:
    organiser: Account = make_account("organiser")
    old_session = _session_token(client, organiser.email, organiser.password)
    assert client.get("/api/v1/admin/me", headers=old_session).status_code == 200

    _patch(client, admin, _user_id(session, organiser.email), password="a brand new passphrase")

    refused = client.get("/api/v1/admin/me", headers=old_session)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    # Signing in with the new password works; the old password does not.
    fresh = _session_token(client, organiser.email, "a brand new passphrase")
    assert client.get("/api/v1/admin/me", headers=fresh).status_code == 200
    old = {"username": organiser.email, "password": organiser.password}
    assert client.post("/api/v1/auth/token", data=old).status_code == 401


def test_an_admin_changing_their_own_password_signs_themselves_out(
    client: TestClient, make_account: Any
) -> None:
    admin: Account = make_account("admin")
    own = _session_token(client, admin.email, admin.password)
    me = client.get("/api/v1/admin/me", headers=own).json()
    response = client.patch(
        f"/api/v1/admin/users/{me['id']}", json={"password": "another long passphrase"}, headers=own
    )
    assert response.status_code == 200  # the change is committed and answered...
    assert client.get("/api/v1/admin/me", headers=own).status_code == 401  # ...then it is over


def test_a_role_change_ends_the_sessions_signed_in_under_the_old_role(
    client: TestClient, admin: Account, make_account: Any, session: Session
) -> None:
    other_admin: Account = make_account("admin")
    old_session = _session_token(client, other_admin.email, other_admin.password)
    assert client.get("/api/v1/admin/users", headers=old_session).status_code == 200

    _patch(client, admin, _user_id(session, other_admin.email), role="organiser")

    assert client.get("/api/v1/admin/me", headers=old_session).status_code == 401
    fresh = _session_token(client, other_admin.email, other_admin.password)
    assert client.get("/api/v1/admin/me", headers=fresh).json()["role"] == "organiser"


def test_changing_only_a_name_or_campaigns_keeps_sessions(
    client: TestClient, admin: Account, make_account: Any, session: Session
) -> None:
    organiser: Account = make_account("organiser")
    own = _session_token(client, organiser.email, organiser.password)
    user_id = _user_id(session, organiser.email)
    _patch(client, admin, user_id, name="Renamed", campaigns=[])
    _patch(client, admin, user_id, role="organiser", is_active=True)  # no actual change
    assert client.get("/api/v1/admin/me", headers=own).status_code == 200


def test_tokens_from_before_a_deactivation_stay_dead_after_reactivation(
    client: TestClient, admin: Account, make_account: Any, session: Session
) -> None:
    organiser: Account = make_account("organiser")
    signed_in = _session_token(client, organiser.email, organiser.password)
    script = organiser.headers  # a long-lived API token
    user_id = _user_id(session, organiser.email)

    _patch(client, admin, user_id, is_active=False)
    assert client.get("/api/v1/admin/me", headers=signed_in).status_code == 401
    assert client.get("/api/v1/admin/me", headers=script).status_code == 401

    _patch(client, admin, user_id, is_active=True)
    assert client.get("/api/v1/admin/me", headers=signed_in).status_code == 401
    assert client.get("/api/v1/admin/me", headers=script).status_code == 401
    # The API token shows as revoked in the owner's listing; signing in again works.
    tokens = session.exec(select(ApiToken).where(ApiToken.user_id == user_id)).all()
    assert tokens and all(t.revoked_at is not None for t in tokens)
    fresh = _session_token(client, organiser.email, organiser.password)
    assert client.get("/api/v1/admin/me", headers=fresh).status_code == 200


def test_api_tokens_survive_a_password_change(
    client: TestClient, admin: Account, make_account: Any, session: Session
) -> None:
    # Scripts' tokens are revoked one by one (DELETE /tokens/{id}) or by deactivation; a routine
    # password change does not break the nightly export.
    organiser: Account = make_account("organiser")
    _patch(client, admin, _user_id(session, organiser.email), password="a brand new passphrase")
    assert client.get("/api/v1/admin/me", headers=organiser.headers).status_code == 200
