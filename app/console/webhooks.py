"""A campaign's outgoing webhooks in the console: its endpoints with their state and last
attempt, registering one (its secret shown once, on the answer to the form), switching one off
and on, deleting one after confirming, and each endpoint's attempts log with when a failed
event is tried again. The webhooks service (the admin API's) applies the rules, checks the URL
and writes the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from app.campaigns import service as campaign_service
from app.campaigns.models import Campaign
from app.console import service as console_service
from app.console.forms import FormFields
from app.console.rendering import ConsoleRoute, has_text, render, validation_messages
from app.console.session import Console, ConsoleDep, ConsoleFormDep
from app.core.config import Settings
from app.core.deps import SessionDep, SettingsDep
from app.core.i18n import translate
from app.petitions.models import DB_INT_MAX
from app.webhooks import addresses
from app.webhooks import service as webhook_service
from app.webhooks.models import EVENTS, Scope, WebhookCreate, WebhookCreated, WebhookEndpoint

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

EndpointId = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
Before = Annotated[int | None, Query(ge=1, le=2**62)]
NOTICES = {"disabled", "enabled", "deleted"}
ATTEMPTS_PER_PAGE = 50
# A new endpoint's form starts at the scope with no personal data: more is a choice.
FRESH_FORM = {"scope": Scope.counts.value}


def _path(campaign: Campaign, suffix: str = "") -> str:
    return f"/admin/campaigns/{campaign.slug}/webhooks{suffix}"


def _context(console: Console, campaign: Campaign, **extra: Any) -> dict[str, Any]:
    return {
        "campaign_slug": campaign.slug,
        "campaign_name": console_service.campaign_name(campaign, console.locale),
        "nav": "dashboard",
        **extra,
    }


def refusal_message(locale: str, refused: addresses.Refused) -> str:
    """Why a URL is refused, in the reader's language (the API's English words otherwise)."""
    key = f"console.webhooks.refused.{refused.reason}"
    if has_text(locale, key):
        return translate(locale, key, **refused.values)
    return str(refused)


def _state(endpoint: WebhookEndpoint, settings: Settings) -> dict[str, Any]:
    """What the page says about an endpoint's state: on, failing (and when Chorus would switch
    it off), off by an organiser, or off by Chorus after failing (and since when)."""
    if endpoint.disabled_at is not None:
        return {
            "key": f"off-{endpoint.disabled_reason or 'organiser'}",
            "since": endpoint.disabled_at,
            "failing_since": endpoint.failing_since,
        }
    if endpoint.failing_since is not None:
        hours = timedelta(hours=settings.WEBHOOK_DISABLE_AFTER_HOURS)
        return {
            "key": "failing",
            "since": endpoint.failing_since,
            "switch_off_at": endpoint.failing_since + hours,
        }
    return {"key": "on"}


def _list_page(
    request: Request,
    console: Console,
    session: SessionDep,
    settings: Settings,
    campaign: Campaign,
    *,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    created: WebhookCreated | None = None,
    done: str = "",
) -> Response:
    assert campaign.id is not None
    endpoints = []
    for endpoint in webhook_service.list_for_campaign(session, campaign_id=campaign.id):
        assert endpoint.id is not None
        last, _ = webhook_service.attempts(session, endpoint_id=endpoint.id, limit=1)
        endpoints.append((endpoint, _state(endpoint, settings), last[0] if last else None))
    return render(
        request,
        console,
        "webhooks.html",
        _context(
            console,
            campaign,
            endpoints=endpoints,
            events=EVENTS,
            scopes=[scope.value for scope in Scope],
            values=values,
            errors=errors or {},
            created=created,
            done=done if done in NOTICES else "",
        ),
        status_code=422 if errors else 200,
    )


@router.get("/campaigns/{slug}/webhooks")
def webhooks_page(
    slug: str,
    request: Request,
    console: ConsoleDep,
    session: SessionDep,
    settings: SettingsDep,
    done: str = "",
) -> Response:
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    return _list_page(request, console, session, settings, campaign, values=FRESH_FORM, done=done)


@router.post("/campaigns/{slug}/webhooks")
def register(
    slug: str,
    request: Request,
    console: ConsoleFormDep,
    session: SessionDep,
    settings: SettingsDep,
    fields: FormFields,
) -> Response:
    """Register an endpoint. Its secret is shown on the answer to this POST only (no redirect:
    after one it could not be shown, and it is never shown again)."""
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    posted = {
        "url": fields.get("url", "").strip(),
        "events": [event for event in EVENTS if fields.get(f"event.{event}")],
        "scope": fields.get("scope", ""),
    }
    try:
        created = webhook_service.create(
            session,
            actor=console.user,
            campaign=campaign,
            data=WebhookCreate.model_validate(posted),
            settings=settings,
        )
    except ValidationError as exc:
        errors = validation_messages(console.locale, exc)
    except webhook_service.UrlRefused as exc:
        errors = {"url": refusal_message(console.locale, exc.refused)}
    else:
        return _list_page(
            request, console, session, settings, campaign, values=FRESH_FORM, created=created
        )
    return _list_page(request, console, session, settings, campaign, values=fields, errors=errors)


def _managed(
    session: SessionDep, console: Console, slug: str, endpoint_id: int
) -> tuple[Campaign, WebhookEndpoint]:
    """The campaign and its endpoint, when this person manages them; 404 otherwise."""
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    endpoint = webhook_service.managed(
        session, user=console.user, slug=slug, endpoint_id=endpoint_id
    )
    return campaign, endpoint


@router.get("/campaigns/{slug}/webhooks/{endpoint_id}")
def endpoint_page(
    slug: str,
    endpoint_id: EndpointId,
    request: Request,
    console: ConsoleDep,
    session: SessionDep,
    settings: SettingsDep,
    before: Before = None,
    done: str = "",
) -> Response:
    """An endpoint: its settings and state, switching it off or on, and its attempts, newest
    first, ATTEMPTS_PER_PAGE at a time."""
    campaign, endpoint = _managed(session, console, slug, endpoint_id)
    page, older = webhook_service.attempts(
        session, endpoint_id=endpoint_id, before=before, limit=ATTEMPTS_PER_PAGE
    )
    failed = [attempt.id for attempt in page if not attempt.delivered]
    return render(
        request,
        console,
        "webhook.html",
        _context(
            console,
            campaign,
            endpoint=endpoint,
            state=_state(endpoint, settings),
            attempts=page,
            next_tries=webhook_service.next_tries(session, endpoint=endpoint, attempt_ids=failed),
            older=older,
            newest_first=before is None,
            max_attempts=settings.OUTBOX_MAX_ATTEMPTS,
            done=done if done in NOTICES else "",
        ),
    )


@router.post("/campaigns/{slug}/webhooks/{endpoint_id}/disable")
def disable(
    slug: str, endpoint_id: EndpointId, console: ConsoleFormDep, session: SessionDep
) -> Response:
    campaign, endpoint = _managed(session, console, slug, endpoint_id)
    webhook_service.disable(session, actor=console.user, endpoint=endpoint)
    return RedirectResponse(_path(campaign, f"/{endpoint_id}?done=disabled"), status_code=303)


@router.post("/campaigns/{slug}/webhooks/{endpoint_id}/enable")
def enable(
    slug: str, endpoint_id: EndpointId, console: ConsoleFormDep, session: SessionDep
) -> Response:
    campaign, endpoint = _managed(session, console, slug, endpoint_id)
    webhook_service.enable(session, actor=console.user, endpoint=endpoint)
    return RedirectResponse(_path(campaign, f"/{endpoint_id}?done=enabled"), status_code=303)


@router.get("/campaigns/{slug}/webhooks/{endpoint_id}/delete")
def delete_page(
    slug: str, endpoint_id: EndpointId, request: Request, console: ConsoleDep, session: SessionDep
) -> Response:
    """Asks before deleting: the attempts log goes too, and the secret cannot be had again."""
    campaign, endpoint = _managed(session, console, slug, endpoint_id)
    return render(
        request, console, "webhook_delete.html", _context(console, campaign, endpoint=endpoint)
    )


@router.post("/campaigns/{slug}/webhooks/{endpoint_id}/delete")
def delete(
    slug: str, endpoint_id: EndpointId, console: ConsoleFormDep, session: SessionDep
) -> Response:
    campaign, endpoint = _managed(session, console, slug, endpoint_id)
    webhook_service.remove(session, actor=console.user, endpoint=endpoint)
    return RedirectResponse(_path(campaign, "?done=deleted"), status_code=303)
