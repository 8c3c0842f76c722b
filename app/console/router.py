"""Every console route, under /admin."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.console import (
    accounts,
    campaigns,
    dashboard,
    delivery,
    delivery_letters,
    donations,
    letter_templates,
    officials,
    petitions,
    safety,
    signatures,
    signin,
    updates,
    webhooks,
)
from app.console.rendering import ConsoleRoute
from app.console.session import ConsoleDep
from app.core.errors import ProblemError

router = APIRouter(include_in_schema=False)
router.include_router(signin.router)
router.include_router(dashboard.router)
router.include_router(petitions.router)
router.include_router(campaigns.router)
router.include_router(officials.router)
router.include_router(updates.router)
router.include_router(signatures.router)
router.include_router(letter_templates.router)
router.include_router(delivery.router)
router.include_router(delivery_letters.router)
router.include_router(donations.router)
router.include_router(webhooks.router)
router.include_router(accounts.router)
router.include_router(safety.router)

fallback = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)


@fallback.get("/{rest:path}")
def not_found(rest: str, console: ConsoleDep) -> Response:
    """Any other console address: sign in first, then a 404 in the console's layout."""
    raise ProblemError(404, "not-found", "Not found")


router.include_router(fallback)  # last: every other console route comes first
