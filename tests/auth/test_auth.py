"""Signing in, tokens, accounts, and the admin API being closed to anyone not signed in."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, select

from app.auth.models import ApiToken, User
from app.core.db import utcnow
from tests.conftest import Account


def login(client: TestClient, email: str, password: str) -> Any:
    return client.post("/api/v1/auth/token", data={"username": email, "password": password})


def test_password_login_gives_a_bearer_token(client: TestClient, admin: Account) -> None:
    response = login(client, admin.email, admin.password)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 12 * 3600
    me = client.get("/api/v1/admin/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == admin.email
    assert me.json()["role"] == "admin"


def test_wrong_password_and_unknown_user_look_the_same(client: TestClient, admin: Account) -> None:
    wrong = login(client, admin.email, "not the password")
    unknown = login(client, "nobody@example.org", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["title"] == unknown.json()["title"] == "Incorrect e-mail or password"
    assert wrong.headers["content-type"].startswith("application/problem+json")


def test_passwords_are_stored_as_argon2_hashes(session: Session, admin: Account) -> None:
    user = session.exec(select(User).where(User.email == admin.email)).one()
    assert user.password_hash.startswith("$argon2id$")
    assert admin.password not in user.password_hash


def test_every_admin_route_needs_a_signed_in_user(app: FastAPI, client: TestClient) -> None:
    paths = {p: ops for p, ops in app.openapi()["paths"].items() if p.startswith("/api/v1/admin")}
    assert len(paths) >= 5
    for template, operations in paths.items():
        path = re.sub(r"\{[^}]+\}", "1", template)
        for method in operations:
            for headers in ({}, {"Authorization": "Bearer chorus_not-a-real-token"}):
                response = client.request(method, path, headers=headers)
                assert response.status_code == 401, (method, path, response.text)
                assert response.headers["www-authenticate"] == "Bearer"


def test_api_tokens_can_be_created_listed_and_revoked(
    client: TestClient, admin: Account, session: Session
) -> None:
    created = client.post(
        "/api/v1/admin/tokens", json={"name": "nightly export"}, headers=admin.headers
    )
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("chorus_")
    script = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/admin/me", headers=script).status_code == 200

    listed = client.get("/api/v1/admin/tokens", headers=admin.headers).json()
    names = [t["name"] for t in listed]
    assert "nightly export" in names
    assert all("token" not in t for t in listed)
    # Only a hash is stored.
    stored = session.exec(select(ApiToken).where(ApiToken.name == "nightly export")).one()
    assert token not in stored.token_hash and len(stored.token_hash) == 64

    revoked = client.delete(f"/api/v1/admin/tokens/{created.json()['id']}", headers=admin.headers)
    assert revoked.status_code == 204
    assert client.get("/api/v1/admin/me", headers=script).status_code == 401


def test_expired_tokens_and_deactivated_users_are_refused(
    client: TestClient, make_account: Any, session: Session, admin: Account
) -> None:
    organiser: Account = make_account("organiser")
    assert client.get("/api/v1/admin/me", headers=organiser.headers).status_code == 200
    session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert client.get("/api/v1/admin/me", headers=organiser.headers).status_code == 401

    fresh = login(client, organiser.email, organiser.password).json()["access_token"]
    headers = {"Authorization": f"Bearer {fresh}"}
    assert client.get("/api/v1/admin/me", headers=headers).status_code == 200
    user = session.exec(select(User).where(User.email == organiser.email)).one()
    assert (
        client.patch(
            f"/api/v1/admin/users/{user.id}",
            json={"is_active": False},
            headers=make_account("admin").headers,
        ).status_code
        == 200
    )
    assert client.get("/api/v1/admin/me", headers=headers).status_code == 401
    assert login(client, organiser.email, organiser.password).status_code == 401


def test_only_admins_manage_accounts(
    client: TestClient, make_account: Any, admin: Account, demo: Any
) -> None:
    organiser: Account = make_account("organiser")
    body: dict[str, Any] = {
        "email": "new.organiser@example.org",
        "password": "a long enough password",
        "role": "organiser",
        "campaigns": ["protect-captured-north-korean-soldiers"],
    }
    assert (
        client.post("/api/v1/admin/users", json=body, headers=organiser.headers).status_code == 403
    )
    assert client.get("/api/v1/admin/users", headers=organiser.headers).status_code == 403

    created = client.post("/api/v1/admin/users", json=body, headers=admin.headers)
    assert created.status_code == 201
    assert created.json()["campaigns"] == ["protect-captured-north-korean-soldiers"]
    again = client.post("/api/v1/admin/users", json=body, headers=admin.headers)
    assert again.status_code == 409
    short = client.post(
        "/api/v1/admin/users",
        json={**body, "email": "x@example.org", "password": "short"},
        headers=admin.headers,
    )
    assert short.status_code == 422
    unknown = client.post(
        "/api/v1/admin/users",
        json={**body, "email": "y@example.org", "campaigns": ["nope"]},
        headers=admin.headers,
    )
    assert unknown.status_code == 422
    # The new organiser can sign in and sees their campaign.
    token = login(client, body["email"], body["password"]).json()["access_token"]
    me = client.get("/api/v1/admin/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["role"] == "organiser"
    assert me["campaigns"] == ["protect-captured-north-korean-soldiers"]

    audit = client.get("/api/v1/admin/audit", headers=admin.headers).json()
    assert any(e["action"] == "user.create" and e["actor_email"] == admin.email for e in audit)


def test_create_admin_command(
    tmp_path: Path, database_url: str, migrated_url: str, session: Session
) -> None:
    from tests.test_cli import clean_env

    env = clean_env(tmp_path, DATABASE_URL=migrated_url)
    command = [
        sys.executable,
        "-m",
        "app.cli",
        "create-admin",
        "--email",
        "Boss@Example.org",
        "--password",
        "a very long password",
    ]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert session.exec(select(User).where(User.email == "boss@example.org")).one().role == "admin"
    twice = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert twice.returncode == 1
    short = subprocess.run(
        [*command[:-1], "short"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert short.returncode == 2


def test_password_guessing_is_slowed_down(
    settings: Any, engine: Any, admin: Account, session: Session
) -> None:
    from app.main import create_app

    limited = create_app(
        settings.model_copy(
            update={
                "LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP": 3,
                "LOGIN_MAX_FAILURES_PER_EMAIL": 6,
                "LOGIN_MAX_FAILURES_PER_IP": 5,
            }
        )
    )

    def from_ip(ip: str) -> TestClient:
        return TestClient(limited, client=(ip, 4000))

    with from_ip("203.0.113.20") as client:
        for _ in range(3):
            assert login(client, admin.email, "wrong guess").status_code == 401
        blocked = login(client, admin.email, admin.password)  # even the right password, for now
        assert blocked.status_code == 429
        assert blocked.headers["content-type"].startswith("application/problem+json")
        # Other accounts from the same address: limited by the per-IP count.
        for n in range(2):
            assert login(client, f"other{n}@example.org", "guess").status_code == 401
        assert login(client, "other9@example.org", "guess").status_code == 429
    with from_ip("198.51.100.30") as owner:
        # Guessing from one place does not lock the account's owner out from theirs.
        assert login(owner, admin.email, admin.password).status_code == 200
    # Guessing spread over many addresses: the account-wide limit stops it, from anywhere.
    for n in range(3):
        with from_ip(f"192.0.2.{n + 1}") as elsewhere:
            assert login(elsewhere, admin.email, "wrong guess").status_code == 401
    with from_ip("198.51.100.30") as owner:
        assert login(owner, admin.email, admin.password).status_code == 429
    from app.auth.models import LoginFailure

    session.execute(update(LoginFailure).values(created_at=utcnow() - timedelta(minutes=16)))
    session.commit()
    with from_ip("198.51.100.30") as later:
        assert login(later, admin.email, admin.password).status_code == 200


def test_an_audit_cursor_beyond_any_id_is_a_clear_error(client: TestClient, admin: Account) -> None:
    # (Found by the fuzzer: SQLite cannot hold such a number, and it answered 500.)
    response = client.get(f"/api/v1/admin/audit?before_id={2**63}", headers=admin.headers)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
