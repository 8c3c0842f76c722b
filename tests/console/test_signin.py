"""Signing in to the console: the API's accounts and throttle, a server-side session in an
HttpOnly cookie that ends after inactivity or on sign-out, and CSRF on every form."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, col, select

from app.audit.models import AuditEntry
from app.auth.models import ApiToken, LoginFailure, TokenKind, User
from app.auth.security import token_hash
from app.core.config import Settings
from app.core.db import utcnow
from app.main import create_app
from tests.conftest import Account
from tests.console.helpers import csrf_of, sign_in, signed_in


def console_tokens(session: Session) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).where(ApiToken.kind == TokenKind.console)))


def test_signed_out_visitors_are_sent_to_sign_in_and_see_no_data(
    client: TestClient, admin: Account
) -> None:
    for path in ("/admin/", "/admin/petitions/anything", "/admin/campaigns/new", "/admin/nowhere"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login"), path
        assert response.content == b""
    assert client.get("/admin/", follow_redirects=False).headers["location"] == "/admin/login"
    assert (
        client.get("/admin/petitions/x", follow_redirects=False).headers["location"]
        == "/admin/login?next=%2Fadmin%2Fpetitions%2Fx"
    )
    assert client.get("/admin", follow_redirects=False).headers["location"] == "/admin/"


def test_a_post_while_signed_out_changes_nothing_and_asks_to_sign_in(
    client: TestClient, session: Session
) -> None:
    response = client.post("/admin/language", data={"locale": "ko"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login"


def test_sign_in_opens_a_session_in_an_httponly_samesite_cookie(
    client: TestClient, admin: Account, session: Session
) -> None:
    response = sign_in(client, admin.email, admin.password)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("chorus_console=")
    )
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/admin" in attributes
    assert "secure" not in attributes  # PUBLIC_BASE_URL is http here
    value = cookie.split(";")[0].split("=", 1)[1]
    [record] = console_tokens(session)
    assert record.token_hash == token_hash(value)  # only a hash is stored
    dashboard = client.get("/admin/")
    assert dashboard.status_code == 200
    assert admin.email in dashboard.text
    assert dashboard.headers["cache-control"] == "no-store"
    [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "console.sign_in"))
    assert entry.actor_email == admin.email


def test_the_cookie_is_secure_when_the_site_is_https(
    settings: Settings, admin: Account, engine: Any
) -> None:
    https = create_app(settings.model_copy(update={"PUBLIC_BASE_URL": "https://chorus.example"}))
    with TestClient(https, base_url="https://testserver") as client:
        response = sign_in(client, admin.email, admin.password)
        assert response.status_code == 303
        cookies = response.headers.get_list("set-cookie")
        session_cookie = next(c for c in cookies if c.startswith("chorus_console="))
        assert "secure" in {part.strip().lower() for part in session_cookie.split(";")}


def test_wrong_passwords_are_refused_next_to_the_form_and_remembered(
    client: TestClient, admin: Account, session: Session
) -> None:
    response = sign_in(client, admin.email, "not the password")
    assert response.status_code == 422
    assert "The e-mail address or the password is not right." in response.text
    assert f'value="{admin.email}"' in response.text  # what was typed stays
    assert "not the password" not in response.text
    unknown = sign_in(client, "nobody@example.org", "not the password")
    assert unknown.status_code == 422  # the same answer: nobody learns who has an account
    assert len(list(session.exec(select(LoginFailure)))) == 2
    assert console_tokens(session) == []
    assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_the_console_and_the_api_share_one_sign_in_throttle(
    client: TestClient, admin: Account, settings: Settings
) -> None:
    for _ in range(settings.LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP):
        client.post("/api/v1/auth/token", data={"username": admin.email, "password": "wrong"})
    # Failures through the API throttle the console, even with the right password now.
    response = sign_in(client, admin.email, admin.password)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.text
    # And failures in the console throttle the API.
    other = "someone@example.org"
    for _ in range(settings.LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP):
        assert sign_in(client, other, "wrong").status_code == 422
    api = client.post("/api/v1/auth/token", data={"username": other, "password": "wrong"})
    assert api.status_code == 429


def test_sign_in_without_its_csrf_token_is_refused(
    client: TestClient, admin: Account, session: Session
) -> None:
    client.get("/admin/login")  # the CSRF cookie is set, but the form's token is missing
    for token in ("", "0" * 64):
        response = client.post(
            "/admin/login",
            data={"email": admin.email, "password": admin.password, "csrf_token": token},
            follow_redirects=False,
        )
        assert response.status_code == 403
    # A token without the cookie it belongs to (another browser's) is refused too.
    form = client.get("/admin/login")
    token = csrf_of(form.text)
    with TestClient(client.app) as other:
        response = other.post(
            "/admin/login",
            data={"email": admin.email, "password": admin.password, "csrf_token": token},
            follow_redirects=False,
        )
        assert response.status_code == 403
    assert console_tokens(session) == []


def test_after_sign_in_the_person_goes_where_they_were_going_and_nowhere_else(
    client: TestClient, admin: Account
) -> None:
    response = sign_in(client, admin.email, admin.password, next_path="/admin/campaigns/new")
    assert response.headers["location"] == "/admin/campaigns/new"
    for elsewhere in ("https://evil.example/", "//evil.example/admin/", "/admin/\\evil", "/api/"):
        client.cookies.clear()
        response = sign_in(client, admin.email, admin.password, next_path=elsewhere)
        assert response.headers["location"] == "/admin/", elsewhere


def test_a_session_ends_after_inactivity_and_each_request_keeps_it_alive(
    client: TestClient, admin: Account, session: Session, settings: Settings
) -> None:
    signed_in(client, admin.email, admin.password)
    [record] = console_tokens(session)
    assert record.expires_at is not None
    idle = timedelta(minutes=settings.CONSOLE_SESSION_IDLE_MINUTES)
    assert abs(record.expires_at - (utcnow() + idle)) < timedelta(minutes=1)

    # Nearly expired, then used: it lives on for another idle period.
    session.execute(
        update(ApiToken)
        .where(col(ApiToken.id) == record.id)
        .values(expires_at=utcnow() + timedelta(seconds=30))
    )
    assert client.get("/admin/").status_code == 200
    session.refresh(record)
    assert record.expires_at is not None
    assert record.expires_at > utcnow() + idle - timedelta(minutes=1)

    # Not used for the idle period: over.
    session.execute(
        update(ApiToken)
        .where(col(ApiToken.id) == record.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    response = client.get("/admin/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login"


def test_a_session_ends_twelve_hours_after_sign_in_however_busy(
    client: TestClient, admin: Account, session: Session
) -> None:
    signed_in(client, admin.email, admin.password)
    [record] = console_tokens(session)
    session.execute(
        update(ApiToken)
        .where(col(ApiToken.id) == record.id)
        .values(created_at=utcnow() - timedelta(hours=12, seconds=1))
    )
    assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_sign_out_ends_the_session_on_the_server(
    client: TestClient, admin: Account, session: Session
) -> None:
    csrf = signed_in(client, admin.email, admin.password)
    cookie = client.cookies.get("chorus_console")
    assert cookie

    refused = client.post("/admin/logout", data={}, follow_redirects=False)
    assert refused.status_code == 403  # no CSRF token: still signed in
    assert client.get("/admin/").status_code == 200

    response = client.post("/admin/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login"
    [record] = console_tokens(session)
    assert record.revoked_at is not None
    # The cookie kept by someone (or restored) no longer opens anything.
    client.cookies.set("chorus_console", cookie, domain="testserver.local", path="/admin")
    assert client.get("/admin/", follow_redirects=False).status_code == 303
    actions = list(session.exec(select(AuditEntry.action).order_by(col(AuditEntry.id))))
    assert actions == ["console.sign_in", "console.sign_out"]


def test_a_deactivated_account_is_signed_out_at_once(
    client: TestClient, admin: Account, session: Session
) -> None:
    signed_in(client, admin.email, admin.password)
    session.execute(update(User).where(col(User.email) == admin.email).values(is_active=False))
    assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_the_console_cookie_is_no_api_token(
    client: TestClient, admin: Account, session: Session
) -> None:
    signed_in(client, admin.email, admin.password)
    cookie = client.cookies.get("chorus_console")
    response = client.get("/api/v1/admin/me", headers={"Authorization": f"Bearer {cookie}"})
    assert response.status_code == 401
    # And an API token is no console session.
    bearer = admin.headers["Authorization"].removeprefix("Bearer ")
    with TestClient(client.app) as other:
        other.cookies.set("chorus_console", bearer, domain="testserver.local", path="/admin")
        assert other.get("/admin/", follow_redirects=False).status_code == 303


def test_the_signed_in_page_skips_the_form(client: TestClient, admin: Account) -> None:
    signed_in(client, admin.email, admin.password)
    response = client.get("/admin/login", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/"


def test_each_sign_in_starts_a_new_session_and_ends_the_old_one(
    client: TestClient, admin: Account, session: Session
) -> None:
    signed_in(client, admin.email, admin.password)
    first = str(client.cookies.get("chorus_console"))
    client.cookies.clear()
    csrf = csrf_of(client.get("/admin/login").text)
    client.cookies.set("chorus_console", first, domain="testserver.local", path="/admin")
    response = client.post(
        "/admin/login",
        data={"email": admin.email, "password": admin.password, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert response.status_code == 303
    second = str(client.cookies.get("chorus_console"))
    assert first != second
    revoked = {t.token_hash: t.revoked_at for t in console_tokens(session)}
    assert revoked[token_hash(first)] is not None
    assert revoked[token_hash(second)] is None
