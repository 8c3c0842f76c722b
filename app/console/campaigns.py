"""Creating a campaign in the console (admins only, as in the API)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from app.auth import service as auth_service
from app.campaigns import service as campaign_service
from app.campaigns.models import CampaignCreate
from app.console.forms import FormFields, translations
from app.console.rendering import ConsoleRoute, problem_messages, render, validation_messages
from app.console.session import Console, ConsoleDep, ConsoleFormDep
from app.core.deps import SessionDep
from app.core.errors import ProblemError
from app.core.i18n import SUPPORTED_LOCALES
from app.donations.currencies import CURRENCIES

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

TEXT_FIELDS = ("name", "description")


def _form(
    request: Request,
    console: Console,
    *,
    values: dict[str, str] | None = None,
    currencies: list[str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        console,
        "campaign_new.html",
        {
            "values": values or {"default_locale": console.locale},
            "chosen_currencies": currencies or [],
            "currencies": list(CURRENCIES),
            "errors": errors or {},
            "locales": list(SUPPORTED_LOCALES),
            "nav": "new-campaign",
        },
        status_code=422 if errors else 200,
    )


@router.get("/campaigns/new")
def new_campaign_page(request: Request, console: ConsoleDep) -> Response:
    auth_service.require_admin(console.user)
    return _form(request, console)


@router.post("/campaigns")
def create_campaign(
    request: Request, console: ConsoleFormDep, session: SessionDep, fields: FormFields
) -> Response:
    """A new campaign; then the form for its first petition."""
    auth_service.require_admin(console.user)
    currencies = [code for code in CURRENCIES if fields.get(f"currency.{code}")]
    try:
        data = CampaignCreate.model_validate(
            {
                "slug": fields.get("slug", "").strip(),
                "default_locale": fields.get("default_locale", ""),
                "translations": translations(fields, TEXT_FIELDS),
                "currencies": currencies,
            }
        )
        campaign = campaign_service.create(session, actor=console.user, data=data)
    except ValidationError as exc:
        errors = validation_messages(console.locale, exc)
        return _form(request, console, values=fields, currencies=currencies, errors=errors)
    except ProblemError as exc:
        if exc.status not in (409, 422):
            raise
        session.rollback()
        errors = problem_messages(console.locale, exc)
        return _form(request, console, values=fields, currencies=currencies, errors=errors)
    return RedirectResponse(
        f"/admin/campaigns/{campaign.slug}/petitions/new?done=campaign-created", status_code=303
    )
