"""Admins only: the allow and block rules for signing, and the audit log with its filters. The
abuse and audit services (the admin API's) keep the rules and read the log."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from app.abuse import rules as abuse_rules
from app.abuse.models import RuleAction, RuleCreate, RuleKind
from app.audit import service as audit_service
from app.audit.models import AuditEntry
from app.auth import service as auth_service
from app.campaigns import service as campaign_service
from app.console import service as console_service
from app.console.forms import FormFields
from app.console.rendering import ConsoleRoute, render, run_form
from app.console.session import Console, ConsoleDep, ConsoleFormDep
from app.core.deps import SessionDep, SettingsDep
from app.core.i18n import translate

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

RowIdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
NOTICES = {"created", "removed"}
PAGE = 50
DETAILS_SHOWN = 300  # characters of an entry's details on the page


# --- abuse rules ----------------------------------------------------------------------------------


def _rules_page(
    request: Request,
    console: Console,
    session: SessionDep,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    done: str = "",
) -> Response:
    return render(
        request,
        console,
        "abuse_rules.html",
        {
            "rules": abuse_rules.list_rules(session),
            "kinds": [
                (k.value, translate(console.locale, f"console.rules.kind.{k}")) for k in RuleKind
            ],
            "actions": [
                (a.value, translate(console.locale, f"console.rules.action.{a}"))
                for a in RuleAction
            ],
            "values": values or {"kind": RuleKind.domain.value, "action": RuleAction.block.value},
            "errors": errors or {},
            "done": done if done in NOTICES else "",
            "nav": "abuse-rules",
        },
        status_code=422 if errors else 200,
    )


@router.get("/abuse-rules")
def rules_page(
    request: Request, console: ConsoleDep, session: SessionDep, done: str = ""
) -> Response:
    auth_service.require_admin(console.user)
    return _rules_page(request, console, session, done=done)


@router.post("/abuse-rules")
def add_rule(
    request: Request,
    console: ConsoleFormDep,
    session: SessionDep,
    settings: SettingsDep,
    fields: FormFields,
) -> Response:
    auth_service.require_admin(console.user)
    data = {name: fields.get(name, "").strip() for name in ("kind", "value", "action", "note")}
    added, errors = run_form(
        session,
        console.locale,
        lambda: abuse_rules.add_rule(
            session, actor=console.user, settings=settings, data=RuleCreate.model_validate(data)
        ),
    )
    if added is None:
        return _rules_page(request, console, session, values=fields, errors=errors)
    return RedirectResponse("/admin/abuse-rules?done=created", status_code=303)


@router.post("/abuse-rules/{rule_id}/remove")
def remove_rule(rule_id: RowIdPath, console: ConsoleFormDep, session: SessionDep) -> Response:
    auth_service.require_admin(console.user)
    abuse_rules.remove_rule(session, actor=console.user, rule_id=rule_id)
    return RedirectResponse("/admin/abuse-rules?done=removed", status_code=303)


# --- the audit log --------------------------------------------------------------------------------


def _day(text: str, locale: str, errors: dict[str, str], field: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        errors[field] = translate(locale, "console.errors.date_invalid")
        return None


def _start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _details(entry: AuditEntry) -> str:
    text = json.dumps(entry.details, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= DETAILS_SHOWN else text[: DETAILS_SHOWN - 1] + "…"


@router.get("/audit")
def audit_page(
    request: Request,
    console: ConsoleDep,
    session: SessionDep,
    action: str = "",
    actor: str = "",
    campaign: str = "",
    since: str = "",
    until: str = "",
    before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """Who did what, newest first, PAGE entries at a time; the filters are a GET form, so a
    filtered view can be bookmarked. `until` is a day included whole (dates are UTC)."""
    auth_service.require_admin(console.user)
    campaigns = campaign_service.list_managed(session, user=console.user)
    names = {c.id: console_service.campaign_name(c, console.locale) for c in campaigns}
    chosen = next((c for c in campaigns if c.slug == campaign), None)
    errors: dict[str, str] = {}
    first = _day(since, console.locale, errors, "since")
    last = _day(until, console.locale, errors, "until")
    if campaign and chosen is None:
        errors["campaign"] = translate(console.locale, "console.errors.campaign_unknown")
    entries: list[AuditEntry] = []
    if not errors:
        entries = audit_service.entries(
            session,
            campaign_ids=[chosen.id or 0] if chosen else None,
            limit=PAGE,
            before_id=before,
            action=action.strip()[:60] or None,
            actor_email=actor.strip()[:320] or None,
            since=_start(first) if first else None,
            until=_start(last) + timedelta(days=1) if last else None,
        )
    filters = {
        "action": action,
        "actor": actor,
        "campaign": campaign,
        "since": since,
        "until": until,
    }
    query = {k: v for k, v in filters.items() if v}
    older = None
    if len(entries) == PAGE:
        older = "/admin/audit?" + urlencode({**query, "before": entries[-1].id})
    shown: list[dict[str, Any]] = [
        {"entry": e, "campaign": names.get(e.campaign_id, ""), "details": _details(e)}
        for e in entries
    ]
    return render(
        request,
        console,
        "audit.html",
        {
            "entries": shown,
            "values": filters,
            "errors": errors,
            "campaigns": [("", translate(console.locale, "console.audit.any_campaign"))]
            + [(c.slug, names[c.id]) for c in campaigns],
            "older": older,
            "newest": "/admin/audit?" + urlencode(query) if before is not None else None,
            "nav": "audit",
        },
        status_code=422 if errors else 200,
    )
