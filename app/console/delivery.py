"""Delivering a petition from the console: choose the annex's columns, preview each official's
letter as it would go now, deliver after confirming; then the deliveries made, the letters
waiting to be printed and posted, and supporters' letters held for review.

The letters' services (the admin API's) do everything: `petition_delivery.deliver` (audited,
idempotent unless a new delivery is asked for), `templates.preview` with the delivery's real
figures, the delivery log and `review`; this module only reads forms and shows their answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.campaigns import service as campaign_service
from app.console.forms import FormFields, FormLists
from app.console.rendering import ConsoleRoute, render, run_form
from app.console.session import Console, ConsoleDep, ConsoleFormDep
from app.core.deps import SessionDep, SettingsDep
from app.core.i18n import LANGUAGE_NAMES, translate
from app.letters import delivery_log, review, templates
from app.letters import petition_delivery as delivery_service
from app.letters.models import (
    DeliveryCreate,
    DeliveryState,
    PetitionDeliveryAdmin,
    PreviewRequest,
    TemplateKind,
)
from app.letters.tasks import delivery_template
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.targets import service as target_service
from app.targets.models import DeliveryChannel, Target

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

# The columns the API's delivery takes beyond name and country, in its order.
ANNEX_FIELDS = tuple(delivery_service.ANNEX_COLUMNS)
# What a redirect after a change may announce (`?done=`), each a catalog entry.
DONE = {"delivered", "unchanged", "posted", "released", "discarded"}
LISTED = 100  # letters shown to print, and held for review (the oldest first)


def path(petition: Petition, suffix: str = "") -> str:
    return f"/admin/petitions/{petition.slug}/delivery{suffix}"


def official_names(session: SessionDep, petition: Petition, locale: str) -> dict[str, str]:
    """Every official of the campaign (retired ones too) by key, named in the reader's language."""
    _, targets = target_service.list_for_campaign(session, campaign_id=petition.campaign_id)
    return {t.key: t.text(locale)["name"] for t in targets}


def annex_errors(errors: dict[str, str]) -> dict[str, str]:
    """The model's refusals of `annex_fields.<n>` beside the one field they concern."""
    out: dict[str, str] = {}
    for field, message in errors.items():
        out.setdefault("annex_fields" if field.startswith("annex_fields") else field, message)
    return out


def parse_annex(
    session: SessionDep, locale: str, chosen: list[str], *, new: bool = False
) -> tuple[DeliveryCreate | None, dict[str, str]]:
    """The columns chosen as the API's model takes them, or its refusal beside the field."""
    data, errors = run_form(
        session,
        locale,
        lambda: DeliveryCreate.model_validate({"annex_fields": chosen, "new": new}),
    )
    return data, annex_errors(errors)


@dataclass(frozen=True)
class DeliveryView:
    """A delivery made, as the API lists it, and whether its annex is still kept."""

    admin: PetitionDeliveryAdmin
    annex_kept: bool


def delivery_page(
    request: Request,
    console: Console,
    session: SessionDep,
    petition: Petition,
    *,
    chosen: list[str] | None = None,
    errors: dict[str, str] | None = None,
    done: str = "",
    number: int = 0,
    status_code: int = 200,
) -> Response:
    """The delivery page; `errors` (a refused form) come back beside their field."""
    assert petition.id is not None
    made = delivery_service.list_deliveries(session, petition_id=petition.id)
    to_print, _ = delivery_log.log(
        session,
        petition_id=petition.id,
        state=DeliveryState.queued,
        channel=DeliveryChannel.postal,
        limit=LISTED,
    )
    errors = errors or {}
    return render(
        request,
        console,
        "delivery.html",
        {
            "petition": petition,
            "title": petition.text(console.locale)["title"],
            "officials": petition_service.letter_targets(session, petition=petition),
            "upcoming": delivery_service.upcoming_delivery_vars(
                session, petition=petition, language=console.locale
            ),
            "annex_fields": ANNEX_FIELDS,
            "chosen": chosen or [],
            "errors": errors,
            "deliveries": [
                DeliveryView(delivery_service.to_admin(session, d), bool(d.annex_gzip))
                for d in reversed(made)
            ],
            "to_print": to_print,
            "held": review.held_for_review(session, petition_id=petition.id, limit=LISTED),
            "names": official_names(session, petition, console.locale),
            "done": done if done in DONE else "",
            "number": number,
            "nav": "dashboard",
        },
        status_code=422 if errors and status_code == 200 else status_code,
    )


@router.get("/petitions/{slug}/delivery")
def delivery(
    slug: str,
    request: Request,
    console: ConsoleDep,
    session: SessionDep,
    done: str = "",
    number: int = 0,
) -> Response:
    petition = petition_service.managed(session, user=console.user, slug=slug)
    return delivery_page(request, console, session, petition, done=done, number=number)


# --- delivering, after confirming -----------------------------------------------------------------


@router.get("/petitions/{slug}/delivery/confirm")
def confirm_page(slug: str, request: Request, console: ConsoleDep, session: SessionDep) -> Response:
    """Ask before delivering: to whom, with which figures and columns (no script needed)."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    assert petition.id is not None
    chosen = request.query_params.getlist("annex_fields")
    data, errors = parse_annex(session, console.locale, chosen)
    if data is None:
        return delivery_page(request, console, session, petition, chosen=chosen, errors=errors)
    made = delivery_service.list_deliveries(session, petition_id=petition.id)
    return render(
        request,
        console,
        "delivery_confirm.html",
        {
            "petition": petition,
            "title": petition.text(console.locale)["title"],
            "officials": petition_service.letter_targets(session, petition=petition),
            "upcoming": delivery_service.upcoming_delivery_vars(
                session, petition=petition, language=console.locale
            ),
            "chosen": [f for f in ANNEX_FIELDS if f in data.annex_fields],
            "latest": made[-1].number if made else 0,
            "nav": "dashboard",
        },
    )


@router.post("/petitions/{slug}/delivery")
def deliver(
    slug: str,
    request: Request,
    console: ConsoleFormDep,
    session: SessionDep,
    settings: SettingsDep,
    fields: FormFields,
    lists: FormLists,
) -> Response:
    """Deliver as the API's `POST …/deliveries` (audited there). `delivered` is the delivery the
    confirmation page knew of: a new one is asked for only while it is still the latest, so a
    form sent twice, or after someone else delivered, sends nothing again."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    assert petition.id is not None
    chosen = lists.get("annex_fields", [])
    made = delivery_service.list_deliveries(session, petition_id=petition.id)
    latest = made[-1].number if made else 0
    seen = fields.get("delivered", "")
    again = seen.isascii() and seen.isdigit() and len(seen) < 12 and 0 < int(seen) == latest
    data, errors = parse_annex(session, console.locale, chosen, new=again)
    result = None
    if data is not None:
        result, errors = run_form(
            session,
            console.locale,
            lambda: delivery_service.deliver(
                session, actor=console.user, petition=petition, data=data, settings=settings
            ),
        )
    if result is None:
        return delivery_page(request, console, session, petition, chosen=chosen, errors=errors)
    made_now, created = result
    done = {"done": "delivered" if created else "unchanged", "number": made_now.number}
    return RedirectResponse(path(petition, "?" + urlencode(done)), status_code=303)


# --- each official's letter, as it would go now ---------------------------------------------------


@router.get("/petitions/{slug}/delivery/preview")
def preview(
    slug: str,
    request: Request,
    console: ConsoleDep,
    session: SessionDep,
    settings: SettingsDep,
    official: str = "",
) -> Response:
    """The delivery letter for the official chosen, as the API's delivery preview renders it:
    the template of the official's language, with the figures a delivery made now would send."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    campaign = campaign_service.get(session, campaign_id=petition.campaign_id)
    officials = petition_service.letter_targets(session, petition=petition)
    target: Target | None = None
    language = ""
    rendered = None
    errors: dict[str, str] = {}
    if official:
        target = next((t for t in officials if str(t.id) == official), None)
        if target is None:
            errors["official"] = translate(console.locale, "console.errors.official_unknown")
    if target is not None:
        assert target.id is not None
        language, _, _ = delivery_template(session, petition=petition, language=target.language)
        request_data = PreviewRequest(target_id=target.id, petition=petition.slug)
        rendered, problems = run_form(
            session,
            console.locale,
            lambda: templates.preview(
                session,
                settings=settings,
                campaign=campaign,
                kind=TemplateKind.delivery,
                language=language,
                data=request_data,
            ),
        )
        for field, message in problems.items():  # the template's own problems: the whole form
            key = "official" if field == "target_id" else "form"
            errors[key] = (errors.get(key, "") + " " + message).strip()
    return render(
        request,
        console,
        "delivery_preview.html",
        {
            "petition": petition,
            "title": petition.text(console.locale)["title"],
            "campaign_slug": campaign.slug,
            "officials": [(str(t.id), t.text(console.locale)["name"]) for t in officials],
            "values": {"official": official},
            "errors": errors,
            "target": target,
            "language": language,
            "language_name": LANGUAGE_NAMES.get(language, language),
            "preview": rendered,
            "nav": "dashboard",
        },
        status_code=422 if errors else 200,
    )
