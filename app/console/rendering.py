"""Rendering console pages: the Jinja environment, numbers and dates in the reader's language,
field errors next to their fields, and error pages in the console's own layout."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime
from functools import cache
from typing import Any, TypeVar
from urllib.parse import urlencode

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from pydantic import ValidationError
from sqlmodel import Session
from starlette.exceptions import HTTPException

from app.console.session import LOGIN, Console, SignInRequired, choose_locale
from app.core.config import ROOT
from app.core.errors import ProblemError
from app.core.i18n import (
    LANGUAGE_NAMES,
    SUPPORTED_LOCALES,
    babel_locale,
    catalog,
    country_name,
    translate,
)
from app.donations.currencies import CURRENCIES, CurrencyRules

TEMPLATES_DIR = ROOT / "templates" / "console"
STATIC_DIR = ROOT / "app" / "console" / "static"
STATIC_URL = "/admin/static"


def has_text(locale: str, key: str) -> bool:
    return key in catalog(locale) or key in catalog("en")


@pass_context
def _translate(context: Context, key: str, **values: Any) -> str:
    return translate(context.get("locale") or "en", key, **values)


@pass_context
def _number(context: Context, value: int | float) -> str:
    return format_decimal(value, locale=context.get("locale") or "en")


@pass_context
def _percent(context: Context, value: float) -> str:
    return format_percent(value, locale=context.get("locale") or "en")


@pass_context
def _moment(context: Context, value: datetime | None) -> str:
    """A moment in UTC, written the reader's way (the console says UTC wherever times show)."""
    if value is None:
        return ""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    locale = babel_locale(context.get("locale") or "en")
    return format_datetime(aware, "medium", tzinfo=UTC, locale=locale) + " UTC"


@pass_context
def _day(context: Context, value: date) -> str:
    return format_date(value, "medium", locale=babel_locale(context.get("locale") or "en"))


@pass_context
def _money(context: Context, minor: int, currency: str) -> str:
    """An amount in minor units, with its currency's decimals, the reader's way (Babel)."""
    rules = CURRENCIES.get(currency) or CurrencyRules(currency, currency, 0, 0, ())
    return rules.format(minor, context.get("locale") or "en")


@pass_context
def _country(context: Context, code: str) -> str:
    return country_name(code, context.get("locale") or "en")


def _language_option(code: str) -> tuple[str, str]:
    return code, LANGUAGE_NAMES.get(code, code)


@cache
def console_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.globals["_"] = _translate
    env.globals["language_names"] = LANGUAGE_NAMES
    env.globals["supported_locales"] = SUPPORTED_LOCALES
    env.globals["static"] = STATIC_URL
    env.filters["number"] = _number
    env.filters["percent"] = _percent
    env.filters["moment"] = _moment
    env.filters["day"] = _day
    env.filters["money"] = _money
    env.filters["country"] = _country
    env.filters["language_option"] = _language_option
    return templates


def render(
    request: Request,
    console: Console | None,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    locale: str | None = None,
) -> Response:
    """A console page; `console` is None on the sign-in page (no navigation then)."""
    chosen = locale or (console.locale if console else choose_locale(request, None))
    response = console_templates().TemplateResponse(
        request,
        template,
        {"locale": chosen, "console": console, "path": request.url.path, **(context or {})},
        status_code=status_code,
    )
    # Console pages show data only the signed-in person may see: never kept by a cache.
    response.headers["cache-control"] = "no-store"
    return response


def render_error(request: Request, status: int, problem: str | None = None) -> Response:
    """An error page; `problem` (a problem's slug) picks a more precise message when the
    catalog has one (`console.problems.<slug>`)."""
    console: Console | None = getattr(request.state, "console", None)
    locale = console.locale if console else choose_locale(request, None)
    key = f"console.problems.{problem}"
    message = translate(locale, key) if problem and has_text(locale, key) else None
    return render(
        request, console, "error.html", {"status": status, "message": message}, status_code=status
    )


# --- errors next to their fields ------------------------------------------------------------------

# Problems about a field that the services raise without naming it.
PROBLEM_FIELDS = {
    "petition-exists": "slug",
    "campaign-exists": "slug",
    "target-exists": "key",
    "user-exists": "email",
    "campaign-not-found": "campaigns",
    "rule-exists": "value",
}


def _message(
    locale: str, type_: str, fallback: str, values: dict[str, Any], field: str = ""
) -> str:
    """The catalog's message for an error type: `console.errors.<type>.<field>` (the last part
    of the field's path) where one field needs its own words, else `console.errors.<type>`."""
    name = field.rsplit(".", 1)[-1]
    for key in (f"console.errors.{type_}.{name}", f"console.errors.{type_}"):
        if has_text(locale, key):
            try:
                return translate(locale, key, **values)
            except (KeyError, IndexError):
                return translate(locale, key)
    return fallback


def validation_messages(locale: str, exc: ValidationError) -> dict[str, str]:
    """{field: message} from a model's validation, the field named by its path (`a.b.c`)."""
    out: dict[str, str] = {}
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "form"
        fallback = str(error["msg"]).removeprefix("Value error, ")
        message = _message(locale, error["type"], fallback, error.get("ctx") or {}, field)
        out.setdefault(field, message)
    return out


def problem_messages(locale: str, exc: ProblemError) -> dict[str, str]:
    """{field: message} from a service's problem; one without a field goes to `form`."""
    if exc.errors:
        return {e.field: _message(locale, e.type, e.message, {}, e.field) for e in exc.errors}
    text = exc.title + (f" {exc.detail}" if exc.detail else "")
    return {PROBLEM_FIELDS.get(exc.slug, "form"): _message(locale, exc.slug, text, {})}


Result = TypeVar("Result")


def run_form(
    session: Session, locale: str, action: Callable[[], Result]
) -> tuple[Result | None, dict[str, str]]:
    """Run a form's model and service call: (its result, {}), or (None, {field: message}) when
    the model or the service refused it (then nothing of the change is kept)."""
    try:
        return action(), {}
    except ValidationError as exc:
        session.rollback()
        return None, validation_messages(locale, exc)
    except ProblemError as exc:
        if exc.status not in (409, 422):
            raise
        session.rollback()
        return None, problem_messages(locale, exc)


# --- the console's routes -------------------------------------------------------------------------


class ConsoleRoute(APIRoute):
    """Console routes answer in the console's own terms: a visitor who is not signed in is sent
    to the sign-in page, and a problem (404 for what the person may not manage, 403, 409…) is a
    page in the console's layout and language. The request's transaction is rolled back first."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                target = LOGIN
                if request.method == "GET" and request.url.path != "/admin/":
                    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    target = f"{LOGIN}?{urlencode({'next': path})}"
                return RedirectResponse(target, status_code=303)
            except ProblemError as exc:
                return render_error(request, exc.status, exc.slug)
            except RequestValidationError:
                return render_error(request, 422)
            except HTTPException as exc:
                return render_error(request, exc.status_code)

        return console_handler
