"""A petition's signatures in the console: filters (status, country, dates, consent) with the
number of signatures they select, downloads streamed by the export service exactly as the admin
API's export (the same query, the same bytes, audited the same way), and the trending sources
with invalidate and release through the abuse service (audited there)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from app.abuse import service as abuse_service
from app.abuse.models import InvalidateRequest
from app.console.forms import FormFields
from app.console.rendering import ConsoleRoute, render, run_form
from app.console.session import Console, ConsoleDep, ConsoleFormDep
from app.core.deps import SessionDep, SettingsDep
from app.core.i18n import translate
from app.exports import service as export_service
from app.exports.service import ExportFilters, ExportFormat
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.signatures.models import SignatureStatus

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

FILTER_FIELDS = ("status", "country", "created_from", "created_to", "consent")
CONSENT = {"yes": True, "no": False}
WINDOWS = (60, 24 * 60, 7 * 24 * 60)  # minutes the trending sources look back
DONE = {"invalidated", "released"}
STATUSES = {s.value for s in SignatureStatus}
FORMATS = {f.value for f in ExportFormat}


def _path(petition: Petition, suffix: str = "") -> str:
    return f"/admin/petitions/{petition.slug}/signatures{suffix}"


def _filters(values: dict[str, str]) -> ExportFilters:
    """The export service's filters from the form's values; 422 problems name the field."""
    status = values.get("status", "")
    return export_service.make_filters(
        status=SignatureStatus(status) if status in STATUSES else None,
        created_from=values.get("created_from") or None,
        created_to=values.get("created_to") or None,
        countries=[values.get("country", "")],
        consent_updates=CONSENT.get(values.get("consent", "")),
    )


def _page(
    request: Request,
    console: Console,
    session: SessionDep,
    petition: Petition,
    values: dict[str, str],
    *,
    minutes: int = WINDOWS[0],
    done: str = "",
    count: int = 0,
    problems: dict[str, str] | None = None,
) -> Response:
    filters, errors = run_form(session, console.locale, lambda: _filters(values))
    errors = {**errors, **(problems or {})}
    total = None
    if filters is not None:
        assert petition.id is not None
        total = export_service.count_in(session, petition_id=petition.id, filters=filters)
    minutes = minutes if minutes in WINDOWS else WINDOWS[0]
    ips, domains = abuse_service.trending(session, petition=petition, minutes=minutes)

    def say(key: str) -> str:
        return translate(console.locale, key)

    return render(
        request,
        console,
        "signatures.html",
        {
            "petition": petition,
            "title": petition.text(console.locale)["title"],
            "values": values,
            "errors": errors,
            "total": total,
            "status_options": [("", say("console.signatures.any"))]
            + [(s.value, say(f"console.signatures.state.{s.value}")) for s in SignatureStatus],
            "consent_options": [("", say("console.signatures.any"))]
            + [(k, say(f"console.signatures.consent.{k}")) for k in CONSENT],
            "format_options": [
                (f.value, say(f"console.signatures.format.{f.value}")) for f in ExportFormat
            ],
            "window_options": [(str(m), say(f"console.signatures.window.{m}")) for m in WINDOWS],
            "minutes": minutes,
            "ips": ips,
            "domains": domains,
            "done": done if done in DONE else "",
            "count": count,
            "nav": "dashboard",
        },
        status_code=422 if errors else 200,
    )


@router.get("/petitions/{slug}/signatures")
def signatures_page(
    slug: str,
    request: Request,
    console: ConsoleDep,
    session: SessionDep,
    minutes: int = WINDOWS[0],
    done: str = "",
    count: int = 0,
) -> Response:
    petition = petition_service.managed(session, user=console.user, slug=slug)
    values = {k: v for k, v in request.query_params.items() if k in FILTER_FIELDS}
    return _page(
        request, console, session, petition, values, minutes=minutes, done=done, count=count
    )


@router.post("/petitions/{slug}/signatures/export")
def export(
    slug: str, request: Request, console: ConsoleFormDep, session: SessionDep, fields: FormFields
) -> Response:
    """The download, as the admin API's export with the same filters (audited by the service)."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    values = {k: v for k, v in fields.items() if k in FILTER_FIELDS}
    filters, errors = run_form(session, console.locale, lambda: _filters(values))
    fmt = fields.get("format", "")
    if filters is None or fmt not in FORMATS:
        return _page(request, console, session, petition, values)
    export_format = ExportFormat(fmt)
    body = export_service.begin_export(
        session,
        request.app.state.engine,
        petition=petition,
        actor=console.user,
        export_format=export_format,
        filters=filters,
        bom=fields.get("bom") == "1",
    )
    return StreamingResponse(
        body,
        media_type=export_format.media_type,
        headers=export_service.download_headers(slug=petition.slug, export_format=export_format),
    )


def _source(fields: dict[str, str]) -> dict[str, Any]:
    """The trending source a button is about: an IP hash or an e-mail domain."""
    if fields.get("kind") == "domain":
        return {"domain": fields.get("source") or None}
    return {"ip_hash": fields.get("source") or None}


def _back(petition: Petition, fields: dict[str, str], done: str, count: int) -> Response:
    query = {"minutes": fields.get("minutes", str(WINDOWS[0])), "done": done, "count": count}
    return RedirectResponse(_path(petition, "?" + urlencode(query)), status_code=303)


@router.post("/petitions/{slug}/signatures/invalidate")
def invalidate(
    slug: str,
    request: Request,
    console: ConsoleFormDep,
    session: SessionDep,
    settings: SettingsDep,
    fields: FormFields,
) -> Response:
    """Invalidate a trending source's signatures (only those held, when asked); counts follow."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    result, problems = run_form(
        session,
        console.locale,
        lambda: abuse_service.invalidate_for(
            session,
            petition=petition,
            settings=settings,
            user=console.user,
            body=InvalidateRequest.model_validate(
                {**_source(fields), "held_only": fields.get("held_only") == "1"}
            ),
        ),
    )
    if result is None:
        return _page(
            request, console, session, petition, {}, problems={"form": " ".join(problems.values())}
        )
    return _back(petition, fields, "invalidated", result[0])


@router.post("/petitions/{slug}/signatures/release")
def release(
    slug: str, console: ConsoleFormDep, session: SessionDep, fields: FormFields
) -> Response:
    """Release a source's held signatures (a false alarm): they get their confirmation e-mail."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    source = _source(fields)
    released = abuse_service.release_for(
        session,
        petition=petition,
        user=console.user,
        ip_digest=source.get("ip_hash"),
        domain=source.get("domain"),
    )
    return _back(petition, fields, "released", released)
