"""The console's first page: the campaigns and petitions you manage, and the mail queue."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.console import service as console_service
from app.console.rendering import ConsoleRoute, render
from app.console.session import HOME, ConsoleDep
from app.core.deps import SessionDep

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)


@router.get("")
def console_root() -> Response:
    # Relative, so no Host header can send anyone elsewhere.
    return RedirectResponse(HOME, status_code=303)


@router.get("/")
def dashboard(request: Request, console: ConsoleDep, session: SessionDep) -> Response:
    data = console_service.dashboard(session, user=console.user, locale=console.locale)
    return render(request, console, "dashboard.html", {"dashboard": data, "nav": "dashboard"})
