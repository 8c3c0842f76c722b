"""Letter templates: checking, saving and finding them, what their variables hold, previews."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import FieldError, ProblemError, field_problem
from app.core.i18n import country_name
from app.letters import defaults, engine, petition_delivery
from app.letters.models import (
    Letter,
    LetterTemplate,
    PreviewRequest,
    TemplateAdmin,
    TemplateKind,
    TemplateSave,
)
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.signatures import service as signature_service
from app.targets.models import Target


def _problem(problem: engine.TemplateProblem) -> ProblemError:
    errors = [
        FieldError(
            field=part,
            type="template_invalid",
            message=f"line {line}: {text}" if line else text,
        )
        for part, line, text in problem.problems
    ]
    return ProblemError(
        422,
        "template-invalid",
        "The template has errors",
        "; ".join(f"{e.field}: {e.message}" for e in errors),
        errors=errors,
    )


def _sample_context(kind: TemplateKind, language: str) -> dict[str, Any]:
    """Made-up values of every variable, to try a template out when it is saved."""
    context: dict[str, Any] = {
        "target": {"name": "Name", "role": "Role", "organisation": "Ministry", "country": "UA"},
        "petition": {
            "title": "Title",
            "url": "https://example.org/p",
            "confirmed_count": 1234,
            "goal": 10000,
        },
        "campaign": {"name": "Campaign"},
        "date": engine.format_date(date(2026, 1, 31), language),
    }
    if kind == TemplateKind.supporter:
        context["supporter"] = {
            "name": "Name",
            "city": "City",
            "country": "Ukraine",
            "country_code": "UA",
        }
        context["message"] = "Text\n\nMore text"
    else:
        context["delivery"] = {
            "number": 1,
            "confirmed_count": 1234,
            "countries": [{"country": "UA", "name": "Ukraine", "count": 1000}],
            "annex_filename": "signatures.csv",
            "annex_sha256": "0" * 64,
            "annex_rows": 1234,
            "annex_url": "",
        }
    return context


def template_problems(
    kind: TemplateKind, language: str, *, subject: str, body: str
) -> list[tuple[str, int | None, str]]:
    """Each problem of a template as (part, line, problem); none when it checks out (it is then
    also tried once with sample values, and with the longest real ones)."""
    try:
        engine.check(kind, subject=subject, body=body)
        sample = _sample_context(kind, language)
        engine.render(subject, body, sample, language=language)
        engine.try_longest(subject, body, sample, language=language)  # real letters fit too
    except engine.TemplateProblem as exc:
        return exc.problems
    return []


def check_template(kind: TemplateKind, language: str, *, subject: str, body: str) -> None:
    """422 with each problem and its line; a template that checks out is also tried once."""
    problems = template_problems(kind, language, subject=subject, body=body)
    if problems:
        raise _problem(engine.TemplateProblem(problems))


def find_template(
    session: Session, *, campaign_id: int, kind: TemplateKind, language: str
) -> LetterTemplate | None:
    """The campaign's template of this kind in exactly this language, if saved."""
    return session.exec(
        select(LetterTemplate).where(
            LetterTemplate.campaign_id == campaign_id,
            LetterTemplate.kind == kind,
            LetterTemplate.language == language,
        )
    ).first()


def save_template(
    session: Session,
    *,
    actor: User,
    campaign: Campaign,
    kind: TemplateKind,
    language: str,
    data: TemplateSave,
) -> LetterTemplate:
    """Create or replace a template once it checks out (audited)."""
    assert campaign.id is not None
    check_template(kind, language, subject=data.subject, body=data.body)
    if kind == TemplateKind.delivery and data.message:
        raise field_problem(
            "message", "message_unused", "Only supporter templates have a starting text"
        )
    template = find_template(session, campaign_id=campaign.id, kind=kind, language=language)
    if template is None:
        template = LetterTemplate(
            campaign_id=campaign.id, kind=kind, language=language, subject="", body=""
        )
    template.subject, template.body, template.message = data.subject, data.body, data.message
    template.updated_at = utcnow()
    session.add(template)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="letter_template.save",
        subject=f"letter_template:{kind}:{language}",
        campaign_id=campaign.id,
    )
    return template


def delete_template(
    session: Session, *, actor: User, campaign: Campaign, kind: TemplateKind, language: str
) -> None:
    """Remove a template (audited); 404 if there is none."""
    assert campaign.id is not None
    template = find_template(session, campaign_id=campaign.id, kind=kind, language=language)
    if template is None:
        raise ProblemError(404, "template-not-found", "No such letter template")
    session.delete(template)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="letter_template.delete",
        subject=f"letter_template:{kind}:{language}",
        campaign_id=campaign.id,
    )


def template_to_admin(template: LetterTemplate) -> TemplateAdmin:
    """A template as the admin API shows it."""
    return TemplateAdmin(
        kind=template.kind,
        language=template.language,
        subject=template.subject,
        body=template.body,
        message=template.message,
        updated_at=template.updated_at,
    )


def list_templates(session: Session, *, campaign_id: int) -> list[TemplateAdmin]:
    """The campaign's templates, by kind and language."""
    rows = session.exec(
        select(LetterTemplate)
        .where(LetterTemplate.campaign_id == campaign_id)
        .order_by(col(LetterTemplate.kind), col(LetterTemplate.language))
    )
    return [template_to_admin(template) for template in rows]


def supporter_template(
    session: Session, *, petition: Petition, locale: str
) -> LetterTemplate | None:
    """The supporter template in `locale`, else in the campaign's default language."""
    campaign = session.get(Campaign, petition.campaign_id)
    assert campaign is not None and campaign.id is not None
    for language in dict.fromkeys([locale, campaign.default_locale, petition.default_locale]):
        found = find_template(
            session, campaign_id=campaign.id, kind=TemplateKind.supporter, language=language
        )
        if found is not None:
            return found
    return None


def form_context(session: Session, *, petition: Petition, locale: str) -> dict[str, Any]:
    """What the petition page needs for its letter form (no form without a template)."""
    template = supporter_template(session, petition=petition, locale=locale)
    targets = petition_service.letter_targets(session, petition=petition) if template else []
    # Each official in the page's language.
    letter = {"targets": [{"key": t.key, **t.text(locale)} for t in targets]} if targets else None
    form: dict[str, Any] = {
        "targets": [t.key for t in targets],
        "message": template.message if template else "",
    }
    return {"letter": letter, "letter_form": form, "letter_errors": {}, "letter_held": False}


def letter_context(
    session: Session,
    *,
    settings: Settings,
    petition: Petition,
    target: Target,
    language: str,
    today: date | None = None,
) -> dict[str, Any]:
    """What every letter to `target` may use: the official, petition, campaign, date."""
    assert petition.id is not None
    campaign = session.get(Campaign, petition.campaign_id)
    assert campaign is not None
    names = campaign.translations.get(language) or campaign.translations.get(
        campaign.default_locale, {}
    )
    text_locale = language if language in petition.translations else petition.default_locale
    return {
        "target": {
            **target.text(language),  # the official in the letter's language
            "country": country_name(target.country, language),
        },
        "petition": {
            "title": petition.text(text_locale)["title"],
            "url": petition_service.page_url(settings, petition, text_locale),
            "confirmed_count": signature_service.confirmed_count(session, petition_id=petition.id),
            "goal": petition.goal,
        },
        "campaign": {"name": names.get("name", campaign.slug)},
        "date": engine.format_date(today or utcnow().date(), language),
    }


def supporter_vars(letter: Letter, language: str) -> dict[str, Any]:
    """What a supporter's letter adds: the supporter and their message."""
    return {
        "supporter": {
            "name": letter.name,
            "city": letter.city,
            "country": country_name(letter.country, language),
            "country_code": letter.country,
        },
        "message": letter.message,
    }


def preview(
    session: Session,
    *,
    settings: Settings,
    campaign: Campaign,
    kind: TemplateKind,
    language: str,
    data: PreviewRequest,
) -> engine.Rendered:
    """Render a template (saved, built-in or unsaved text) for one official, sending nothing."""
    assert campaign.id is not None
    target = session.get(Target, data.target_id)
    if target is None or target.campaign_id != campaign.id:
        raise field_problem("target_id", "target_unknown", "No such target here")
    if data.petition:
        petition = session.exec(
            select(Petition).where(
                Petition.slug == data.petition, Petition.campaign_id == campaign.id
            )
        ).first()
        if petition is None:
            raise field_problem("petition", "petition_unknown", "No such petition here")
    else:
        petition = session.exec(
            select(Petition).where(Petition.campaign_id == campaign.id).order_by(col(Petition.id))
        ).first()
        if petition is None:
            raise ProblemError(409, "no-petition", "The campaign has no petition to preview with")
    if data.subject is not None or data.body is not None:
        saved = find_template(session, campaign_id=campaign.id, kind=kind, language=language)
        subject = data.subject if data.subject is not None else (saved.subject if saved else "")
        body = data.body if data.body is not None else (saved.body if saved else "")
        suggested = saved.message if saved else ""
        check_template(kind, language, subject=subject, body=body)
    else:
        saved = find_template(session, campaign_id=campaign.id, kind=kind, language=language)
        if saved is None:
            if kind == TemplateKind.delivery and language in defaults.DELIVERY:
                subject, body = defaults.DELIVERY[language]
                suggested = ""
            else:
                raise ProblemError(404, "template-not-found", "No such letter template")
        else:
            subject, body, suggested = saved.subject, saved.body, saved.message
    context = letter_context(
        session, settings=settings, petition=petition, target=target, language=language
    )
    if kind == TemplateKind.supporter:
        sample = Letter(
            campaign_id=campaign.id,
            petition_id=petition.id or 0,
            name=data.supporter.name,
            email="",
            email_normalised="",
            city=data.supporter.city,
            country=data.supporter.country,
            locale=language,
            message=data.message if data.message is not None else suggested,
            signature=b"",
        )
        context.update(supporter_vars(sample, language))
    else:
        context["delivery"] = petition_delivery.upcoming_delivery_vars(
            session, petition=petition, language=language
        )
    try:
        return engine.render(subject, body, context, language=language)
    except engine.TemplateProblem as exc:
        raise _problem(exc) from None
