"""A campaign's letter templates in the console: one editor per kind and language that shows
the sandbox's refusals next to the line they concern, the variables available, and a preview as
a chosen official would get it. The letters' templates service (the admin API's) checks, saves,
audits and renders."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic_core import PydanticCustomError

from app.campaigns import service as campaign_service
from app.campaigns.models import Campaign
from app.console import service as console_service
from app.console.forms import FormFields
from app.console.rendering import ConsoleRoute, render, run_form
from app.console.session import Console, ConsoleDep, ConsoleFormDep
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import ProblemError
from app.core.i18n import SUPPORTED_LOCALES, translate
from app.letters import defaults, engine, templates
from app.letters.models import PreviewRequest, TemplateKind, TemplateSave
from app.targets import service as target_service
from app.targets.models import check_language

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

KINDS = {k.value for k in TemplateKind}


def _path(campaign: Campaign, suffix: str = "") -> str:
    return f"/admin/campaigns/{campaign.slug}/letter-templates{suffix}"


def _kind_language(kind: str, language: str) -> tuple[TemplateKind, str]:
    """The kind and language of an editor's address; anything else is not a page (404)."""
    if kind not in KINDS:
        raise ProblemError(404, "not-found", "Not found")
    try:
        return TemplateKind(kind), check_language(language)
    except PydanticCustomError:
        raise ProblemError(404, "not-found", "Not found") from None


@router.get("/campaigns/{slug}/letter-templates")
def templates_page(
    slug: str, request: Request, console: ConsoleDep, session: SessionDep
) -> Response:
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    assert campaign.id is not None
    saved = {
        (t.kind, t.language): t for t in templates.list_templates(session, campaign_id=campaign.id)
    }
    languages = list(SUPPORTED_LOCALES) + sorted(
        {lang for _, lang in saved if lang not in SUPPORTED_LOCALES}
    )
    return render(
        request,
        console,
        "letter_templates.html",
        {
            "campaign": campaign,
            "campaign_name": console_service.campaign_name(campaign, console.locale),
            "kinds": [k.value for k in TemplateKind],
            "languages": languages,
            "saved": {f"{k}:{lang}": t for (k, lang), t in saved.items()},
            "builtin": set(defaults.DELIVERY),
            "nav": "dashboard",
        },
    )


def _stored(
    session: SessionDep, campaign: Campaign, kind: TemplateKind, language: str
) -> dict[str, str]:
    """The editor's texts: the saved template, else the built-in delivery letter, else empty."""
    assert campaign.id is not None
    saved = templates.find_template(session, campaign_id=campaign.id, kind=kind, language=language)
    if saved is not None:
        return {"subject": saved.subject, "body": saved.body, "message": saved.message}
    if kind == TemplateKind.delivery and language in defaults.DELIVERY:
        subject, body = defaults.DELIVERY[language]
        return {"subject": subject, "body": body}
    return {}


def _lines(
    body: str, problems: list[tuple[str, int | None, str]]
) -> list[tuple[int, str, list[str]]]:
    """The body's lines, numbered, each with the problems found on it."""
    on: dict[int, list[str]] = {}
    for part, line, text in problems:
        if part == "body" and line:
            on.setdefault(line, []).append(text)
    return [(n, text, on.get(n, [])) for n, text in enumerate(body.split("\n"), start=1)]


def _editor(
    request: Request,
    console: Console,
    session: SessionDep,
    campaign: Campaign,
    kind: TemplateKind,
    language: str,
    values: dict[str, str],
    *,
    errors: dict[str, str] | None = None,
    problems: list[tuple[str, int | None, str]] | None = None,
    preview: engine.Rendered | None = None,
    saved: bool = False,
    deleted: bool = False,
) -> Response:
    assert campaign.id is not None
    _, targets = target_service.list_for_campaign(session, campaign_id=campaign.id)
    stored = templates.find_template(session, campaign_id=campaign.id, kind=kind, language=language)
    problems = problems or []
    errors = dict(errors or {})
    for part, line, text in problems:  # every problem in the summary; by its field
        key = part if part in ("subject", "body", "message") else "form"
        where = f"{line}: " if line else ""
        errors.setdefault(key, "")
        errors[key] = (errors[key] + " " + where + text).strip()
    return render(
        request,
        console,
        "letter_template.html",
        {
            "campaign": campaign,
            "campaign_name": console_service.campaign_name(campaign, console.locale),
            "kind": kind.value,
            "language": language,
            "values": values,
            "errors": errors,
            "lines": _lines(values.get("body", ""), problems) if problems else [],
            "variables": engine.VARIABLES[kind],
            "officials": [(str(t.id), t.name) for t in targets if t.retired_at is None],
            "preview": preview,
            "saved": saved,
            "deleted": deleted,
            "has_saved": stored is not None,
            "nav": "dashboard",
        },
        status_code=422 if errors else 200,
    )


@router.get("/campaigns/{slug}/letter-templates/{kind}/{language}")
def editor_page(
    slug: str,
    kind: str,
    language: str,
    request: Request,
    console: ConsoleDep,
    session: SessionDep,
    saved: bool = False,
    deleted: bool = False,
) -> Response:
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    template_kind, lang = _kind_language(kind, language)
    values = _stored(session, campaign, template_kind, lang)
    return _editor(
        request,
        console,
        session,
        campaign,
        template_kind,
        lang,
        values,
        saved=saved,
        deleted=deleted,
    )


@router.get("/campaigns/{slug}/letter-templates/{kind}/{language}/delete")
def delete_page(
    slug: str, kind: str, language: str, request: Request, console: ConsoleDep, session: SessionDep
) -> Response:
    """Ask before deleting the campaign's own template (the API's DELETE)."""
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    template_kind, lang = _kind_language(kind, language)
    assert campaign.id is not None
    if (
        templates.find_template(session, campaign_id=campaign.id, kind=template_kind, language=lang)
        is None
    ):
        return RedirectResponse(_path(campaign, f"/{kind}/{lang}"), status_code=303)
    return render(
        request,
        console,
        "letter_template_delete.html",
        {
            "campaign": campaign,
            "campaign_name": console_service.campaign_name(campaign, console.locale),
            "kind": kind,
            "language": lang,
            "builtin": template_kind == TemplateKind.delivery and lang in defaults.DELIVERY,
            "nav": "dashboard",
        },
    )


@router.post("/campaigns/{slug}/letter-templates/{kind}/{language}/delete")
def delete(
    slug: str, kind: str, language: str, console: ConsoleFormDep, session: SessionDep
) -> Response:
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    template_kind, lang = _kind_language(kind, language)
    assert campaign.id is not None
    if (
        templates.find_template(session, campaign_id=campaign.id, kind=template_kind, language=lang)
        is None
    ):
        # Deleted already (the form sent twice, or by someone else): nothing more to do.
        return RedirectResponse(_path(campaign, f"/{kind}/{lang}"), status_code=303)
    templates.delete_template(
        session, actor=console.user, campaign=campaign, kind=template_kind, language=lang
    )
    return RedirectResponse(_path(campaign, f"/{kind}/{lang}?deleted=true"), status_code=303)


@router.post("/campaigns/{slug}/letter-templates/{kind}/{language}")
def save_or_preview(
    slug: str,
    kind: str,
    language: str,
    request: Request,
    console: ConsoleFormDep,
    session: SessionDep,
    settings: SettingsDep,
    fields: FormFields,
) -> Response:
    """`step=preview` renders the text as typed for the chosen official (nothing is saved);
    otherwise the template is saved. Problems come back beside their line either way."""
    campaign = campaign_service.managed(session, user=console.user, slug=slug)
    template_kind, lang = _kind_language(kind, language)
    values = {k: fields.get(k, "") for k in ("subject", "body", "message", "official")}
    problems = templates.template_problems(
        template_kind, lang, subject=values["subject"], body=values["body"]
    )
    if problems:
        return _editor(
            request, console, session, campaign, template_kind, lang, values, problems=problems
        )
    if fields.get("step") == "preview":
        if not values["official"].isdigit():
            errors = {"official": translate(console.locale, "console.templates.choose_official")}
            return _editor(
                request, console, session, campaign, template_kind, lang, values, errors=errors
            )
        rendered, errors = run_form(
            session,
            console.locale,
            lambda: templates.preview(
                session,
                settings=settings,
                campaign=campaign,
                kind=template_kind,
                language=lang,
                data=PreviewRequest(
                    target_id=int(values["official"]),
                    subject=values["subject"],
                    body=values["body"],
                    message=values["message"] if template_kind == TemplateKind.supporter else None,
                ),
            ),
        )
        if "target_id" in errors:
            errors["official"] = errors.pop("target_id")
        return _editor(
            request,
            console,
            session,
            campaign,
            template_kind,
            lang,
            values,
            errors=errors,
            preview=rendered,
        )
    data = {k: values[k] for k in ("subject", "body")}
    if template_kind == TemplateKind.supporter:
        data["message"] = values["message"]
    _, errors = run_form(
        session,
        console.locale,
        lambda: templates.save_template(
            session,
            actor=console.user,
            campaign=campaign,
            kind=template_kind,
            language=lang,
            data=TemplateSave.model_validate(data),
        ),
    )
    if errors:
        return _editor(
            request, console, session, campaign, template_kind, lang, values, errors=errors
        )
    return RedirectResponse(_path(campaign, f"/{kind}/{lang}?saved=true"), status_code=303)
