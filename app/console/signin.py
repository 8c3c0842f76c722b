"""Signing in to the console and out of it, and the language it speaks to each person."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.audit import service as audit_service
from app.auth import service as auth_service
from app.console.rendering import ConsoleRoute, render
from app.console.session import (
    LOGIN,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    ConsoleFormDep,
    choose_locale,
    clear_session_cookie,
    csrf_valid,
    idle,
    login_csrf,
    login_nonce,
    safe_next,
    set_login_cookie,
    set_session_cookie,
)
from app.core.clientip import ip_hash
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import ProblemError
from app.core.i18n import translate

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)


def _login_form(
    request: Request,
    *,
    csrf: str,
    next_path: str,
    email: str = "",
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        None,
        "login.html",
        {"csrf": csrf, "next": next_path, "email": email, "errors": errors or {}},
        status_code=status_code,
    )


@router.get("/login")
def login_page(
    request: Request, session: SessionDep, settings: SettingsDep, next: str = ""
) -> Response:
    """The sign-in form (someone already signed in goes straight on)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if token and auth_service.console_user(session, token=token, idle=idle(settings)):
        return RedirectResponse(safe_next(next), status_code=303)
    nonce, new = login_nonce(request)
    response = _login_form(request, csrf=login_csrf(settings, nonce), next_path=safe_next(next))
    if new:
        set_login_cookie(response, settings, nonce)
    return response


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Sign in with the accounts, password hashes and throttle of `POST /api/v1/auth/token`."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not csrf_valid(settings, "login:" + nonce, csrf_token):
        raise ProblemError(403, "csrf", "This form has expired", "Reload the page and try again.")
    locale = choose_locale(request, None)
    errors: dict[str, str] = {}
    if not email.strip():
        errors["email"] = translate(locale, "console.login.email_missing")
    if not password:
        errors["password"] = translate(locale, "console.login.password_missing")
    status_code = 422
    if not errors:
        ip = request.client.host if request.client else None
        try:
            user = auth_service.sign_in(
                session,
                engine=request.app.state.engine,
                settings=settings,
                email=email,
                password=password,
                ip_digest=ip_hash(settings, ip) if ip else None,
            )
        except ProblemError as exc:
            if exc.status == 429:
                status_code = 429
                errors["form"] = translate(
                    locale, "console.login.throttled", minutes=settings.LOGIN_WINDOW_MINUTES
                )
            else:
                errors["form"] = translate(locale, "console.login.failed")
    if errors:
        return _login_form(
            request,
            csrf=csrf_token,
            next_path=safe_next(next),
            email=email,
            errors=errors,
            status_code=status_code,
        )
    previous = request.cookies.get(SESSION_COOKIE, "")
    if previous:  # a new session for each sign-in; the browser's old one (if any) ends
        auth_service.end_console_session(session, token=previous)
    token = auth_service.start_console_session(session, user=user, idle=idle(settings))
    audit_service.record(
        session, actor=user, action="console.sign_in", subject=f"user:{user.email}"
    )
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, settings, token)
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN)
    return response


@router.post("/logout")
def logout(
    request: Request, console: ConsoleFormDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """Sign out: the session ends on the server, not only in this browser."""
    auth_service.end_console_session(session, token=request.cookies.get(SESSION_COOKIE, ""))
    audit_service.record(
        session, actor=console.user, action="console.sign_out", subject=f"user:{console.user.email}"
    )
    response = RedirectResponse(LOGIN, status_code=303)
    clear_session_cookie(response, settings)
    return response


@router.post("/language")
def choose_language(
    console: ConsoleFormDep,
    session: SessionDep,
    locale: Annotated[str, Form(max_length=8)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """The language the console speaks to this person, wherever they sign in."""
    auth_service.set_locale(session, user=console.user, locale=locale)
    audit_service.record(
        session,
        actor=console.user,
        action="user.locale",
        subject=f"user:{console.user.email}",
        details={"locale": locale},
    )
    return RedirectResponse(safe_next(next), status_code=303)
