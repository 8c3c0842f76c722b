"""Who is signed in to the console: the session cookie, CSRF tokens, and the dependencies that
give a page its signed-in person.

The session itself is an `app.auth` token of kind `console` (stored as its SHA-256, revoked on
sign-out, expiring after CONSOLE_SESSION_IDLE_MINUTES without a request): whatever revokes a
person's tokens ends their console sessions too.

CSRF: every state-changing form carries `csrf_token`, an HMAC (keyed by SECRET_KEY) of the
session's id; the sign-in form, before any session exists, an HMAC of a random value kept in a
cookie of its own. A POST without the right one is refused with 403 before anything runs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from app.auth import service as auth_service
from app.auth.models import Role, User
from app.auth.security import token_hash
from app.core.config import Settings
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import ProblemError
from app.core.i18n import SUPPORTED_LOCALES, request_locale

SESSION_COOKIE = "chorus_console"
LOGIN_COOKIE = "chorus_console_login"  # the sign-in form's CSRF value, before any session
COOKIE_PATH = "/admin"
CSRF_FIELD = "csrf_token"
HOME = "/admin/"
LOGIN = "/admin/login"


class SignInRequired(Exception):
    """No live console session: the visitor is sent to the sign-in page."""


@dataclass(frozen=True)
class Console:
    """The signed-in person, as every console page sees them."""

    user: User
    locale: str
    csrf: str  # the value every form of this session must send back

    @property
    def is_admin(self) -> bool:
        return self.user.role == Role.admin


def idle(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.CONSOLE_SESSION_IDLE_MINUTES)


def _secure(settings: Settings) -> bool:
    return settings.PUBLIC_BASE_URL.lower().startswith("https://")


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    # No max-age: the server decides when a session ends; the browser forgets it on quitting.
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        secure=_secure(settings),
        samesite="lax",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, secure=_secure(settings), samesite="lax"
    )


def csrf_token(settings: Settings, material: str) -> str:
    """The CSRF token for a session (or a sign-in form): an HMAC nobody can make without
    SECRET_KEY, bound to what only this browser holds."""
    key = hmac.new(
        settings.SECRET_KEY.get_secret_value().encode(), b"chorus-console-csrf", hashlib.sha256
    ).digest()
    return hmac.new(key, material.encode(), hashlib.sha256).hexdigest()


def csrf_valid(settings: Settings, material: str, given: str) -> bool:
    return hmac.compare_digest(csrf_token(settings, material).encode(), given.encode())


def session_csrf(settings: Settings, token: str) -> str:
    return csrf_token(settings, "session:" + token_hash(token))


# --- the sign-in form's own CSRF value ---------------------------------------------------------


def login_nonce(request: Request) -> tuple[str, bool]:
    """The random value the sign-in form's token is bound to, and whether it is new (then the
    response must set its cookie)."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if 20 <= len(nonce) <= 100 and nonce.isascii():
        return nonce, False
    return secrets.token_urlsafe(32), True


def set_login_cookie(response: Response, settings: Settings, nonce: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        path=LOGIN,
        httponly=True,
        secure=_secure(settings),
        samesite="lax",
    )


def login_csrf(settings: Settings, nonce: str) -> str:
    return csrf_token(settings, "login:" + nonce)


# --- dependencies -------------------------------------------------------------------------------


def choose_locale(request: Request, user: User | None) -> str:
    """The person's own choice; before they made one (or before sign-in), their browser's."""
    if user is not None and user.locale in SUPPORTED_LOCALES:
        return user.locale
    return request_locale(request)


def current_console(request: Request, session: SessionDep, settings: SettingsDep) -> Console:
    """The signed-in person; a visitor without a live session is sent to sign in."""
    token = request.cookies.get(SESSION_COOKIE, "")
    user = (
        auth_service.console_user(session, token=token, idle=idle(settings))
        if 0 < len(token) <= 200
        else None
    )
    if user is None:
        raise SignInRequired
    console = Console(
        user=user, locale=choose_locale(request, user), csrf=session_csrf(settings, token)
    )
    request.state.console = console  # for error pages, rendered after the session is gone
    return console


ConsoleDep = Annotated[Console, Depends(current_console)]


async def posted_csrf(request: Request) -> str:
    """The form's CSRF token (the form is parsed once; the endpoint's fields reuse it)."""
    value = (await request.form()).get(CSRF_FIELD)
    return value if isinstance(value, str) else ""


def console_form(console: ConsoleDep, given: Annotated[str, Depends(posted_csrf)]) -> Console:
    """The signed-in person sending a form of this session; 403 otherwise, before any change."""
    if not hmac.compare_digest(console.csrf.encode(), given.encode()):
        raise ProblemError(403, "csrf", "This form has expired", "Reload the page and try again.")
    return console


ConsoleFormDep = Annotated[Console, Depends(console_form)]


def safe_next(value: str | None) -> str:
    """Where to go after signing in: only a console path of this site (no open redirect)."""
    if (
        value
        and value.startswith(HOME)
        and not value.startswith("//")
        and "\\" not in value
        and value.isprintable()
        and len(value) <= 500
    ):
        return value
    return HOME
