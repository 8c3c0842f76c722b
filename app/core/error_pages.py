"""What a browser sees when no route or handler fits: a page in the visitor's language.

Every exception handler (app/core/errors.py) answers RFC 9457 problem JSON. For a page request
from a browser, install_error_pages() turns that answer into templates/pages/error.html with the
same status and the headers that matter to it (Retry-After, Allow), in the language the visitor
asked for (`?lang=`, then Accept-Language). A GET on a form's POST-only address (a bookmarked
or reloaded `/petitions/{slug}/sign`) gets a 405 page that links back to the form.

Starlette's own trailing-slash redirect writes the Host header into `Location`, so a forged
Host sends the browser to another site; install_slash_redirects() answers with a relative one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from app.core.i18n import request_locale
from app.core.templating import page_templates

# status -> (heading, detail) keys in app/locales/errors.*.json and <locale>.json
MESSAGES: dict[int, tuple[str, str | None]] = {
    400: ("error.bad_request", None),
    404: ("error.not_found", None),
    405: ("error.method_not_allowed", "error.method_not_allowed.detail"),
    413: ("error.too_large", None),
    422: ("error.bad_request", None),
    429: ("error.unavailable", "error.unavailable.detail"),
    503: ("error.unavailable", "error.unavailable.detail"),
}
KEPT_HEADERS = ("retry-after", "allow")
# Characters left as they are in a redirect's path; everything else (a backslash, which
# browsers read as a slash, or a space) is percent-encoded.
PATH_SAFE = "/:@!$&'()*+,;=~"


def wants_html(request: Request) -> bool:
    """A browser asking for a page (the API always answers problem JSON)."""
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


def _matches_a_route(app: Any, scope: Scope) -> bool:
    return any(route.matches(scope)[0] is not Match.NONE for route in app.router.routes)


def form_page(request: Request, locale: str) -> str | None:
    """The nearest page above a POST-only address (`/petitions/x/sign` → `/petitions/x`)."""
    parts = request.url.path.rstrip("/").split("/")
    while len(parts) > 2:
        parts.pop()
        path = "/".join(parts)
        probe = {**request.scope, "method": "GET", "path": path}
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            return f"{quote(path, safe=PATH_SAFE)}?lang={locale}"
    return None


def error_page(request: Request, problem: Response) -> Response:
    """The problem answer `problem` as a page, with its status and Retry-After/Allow."""
    status = problem.status_code
    locale = request_locale(request)
    heading, detail = MESSAGES.get(
        status, ("error.generic", "error.generic.detail" if status >= 500 else None)
    )
    back = form_page(request, locale) if status == 405 and request.method == "GET" else None
    page = page_templates().TemplateResponse(
        request,
        "error.html",
        {
            "locale": locale,
            "locales": [],
            "status": status,
            "heading": heading,
            "detail": detail,
            "back": back,
        },
        status_code=status,
    )
    for name in KEPT_HEADERS:
        if name in problem.headers:
            page.headers[name] = problem.headers[name]
    return page


def _page_or_problem(handler: Callable[..., Any]) -> Callable[..., Any]:
    async def answer(request: Request, exc: Exception) -> Response:
        response = handler(request, exc)
        if inspect.isawaitable(response):
            response = await response
        assert isinstance(response, Response)
        if response.status_code >= 400 and wants_html(request):
            return error_page(request, response)
        return response

    return answer


def install_error_pages(app: FastAPI) -> None:
    """Wrap every exception handler installed so far: pages for browsers, problems otherwise."""
    for key, handler in list(app.exception_handlers.items()):
        app.exception_handlers[key] = _page_or_problem(handler)


def install_slash_redirects(app: FastAPI) -> None:
    """`/api/v1/petitions/` redirects to `/api/v1/petitions` (and the reverse) with a relative
    `Location`, never one built from the request's Host header."""
    app.router.redirect_slashes = False
    not_found = app.router.default

    async def slash_redirect_or_not_found(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if scope["type"] == "http" and path.rstrip("/"):
            target = path.rstrip("/") if path.endswith("/") else path + "/"
            # "//host" would be another site to a browser: such paths are never redirected.
            if not target.startswith("//") and _matches_a_route(app, {**scope, "path": target}):
                query = scope.get("query_string", b"").decode("latin-1")
                location = quote(target, safe=PATH_SAFE) + (f"?{query}" if query else "")
                await RedirectResponse(location, status_code=307)(scope, receive, send)
                return
        await not_found(scope, receive, send)

    app.router.default = slash_redirect_or_not_found
