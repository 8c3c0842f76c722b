"""The donate page (no JavaScript needed) and its thank-you page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.core.deps import SessionDep, SettingsDep
from app.core.errors import ProblemError, field_errors_from_pydantic
from app.core.i18n import SUPPORTED_LOCALES, request_locale, translate
from app.core.templating import page_templates
from app.donations import service as donation_service
from app.donations.currencies import CURRENCIES, DEFAULT_FOR_LOCALE
from app.donations.models import DonationCreate, Frequency

router = APIRouter(include_in_schema=False)


def _context(
    request: Request, session: SessionDep, slug: str, locale: str | None, currency: str | None
) -> dict[str, Any]:
    campaign = donation_service.get_campaign(session, slug=slug)
    locales = [loc for loc in SUPPORTED_LOCALES if loc in campaign.translations]
    locale = (
        locale
        if locale in locales
        else request_locale(request, available=locales, default=campaign.default_locale)
    )
    accepted = [c for c in campaign.currencies if c in CURRENCIES]
    if currency not in accepted:
        preferred = DEFAULT_FOR_LOCALE.get(locale)
        currency = preferred if preferred in accepted else (accepted[0] if accepted else None)
    rules = CURRENCIES[currency] if currency else None
    texts = campaign.translations.get(locale) or campaign.translations[campaign.default_locale]
    return {
        "request": request,
        "locale": locale,
        "locales": locales,
        "campaign": campaign,
        "text": texts,
        "currencies": accepted,
        "currency": currency,
        "rules": rules,
        "presets": [(amount, rules.format(amount, locale)) for amount in rules.presets]
        if rules
        else [],
        "form": {"frequency": "once"},
        "errors": {},
        "cancelled": request.query_params.get("cancelled") == "1",
        "enabled": bool(accepted),
        "switch_path": f"/campaigns/{campaign.slug}/donate",
    }


@router.get("/campaigns/{slug}/donate", response_class=HTMLResponse)
def donate_page(slug: str, request: Request, session: SessionDep) -> Response:
    context = _context(request, session, slug, None, request.query_params.get("currency"))
    return page_templates().TemplateResponse(request, "donate.html", context)


@router.post("/campaigns/{slug}/donate", response_class=HTMLResponse)
def donate_form(
    slug: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    currency: Annotated[str, Form()] = "",
    preset: Annotated[str, Form()] = "",
    custom_amount: Annotated[str, Form()] = "",
    frequency: Annotated[str, Form()] = "once",
    email: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    locale: Annotated[str, Form()] = "",
) -> Response:
    context = _context(request, session, slug, locale[:8], currency.upper()[:3])
    locale, rules = context["locale"], context["rules"]
    context["form"] = {
        "preset": preset,
        "custom_amount": custom_amount,
        "frequency": frequency,
        "email": email,
        "name": name,
    }
    errors: dict[str, str] = {}
    amount = 0
    if rules is None:
        errors["form"] = translate(locale, "donate.unavailable")
    elif len(custom_amount) > 30:
        errors["amount"] = translate(locale, "errors.amount_invalid")
    elif custom_amount.strip():
        try:
            amount = rules.to_minor(custom_amount)
        except ValueError:
            errors["amount"] = translate(locale, "errors.amount_invalid")
    elif preset.isdigit():
        amount = int(preset)
    else:
        errors["amount"] = translate(locale, "errors.amount_missing")
    data = None
    if not errors:
        try:
            data = DonationCreate(
                amount=amount,
                currency=context["currency"],
                frequency=Frequency(frequency)
                if frequency in ("once", "monthly")
                else Frequency.once,
                email=email.strip()[:320] or None,
                name=name.strip()[:100] or None,
                locale=locale,
            )
        except ValidationError as exc:
            for error in field_errors_from_pydantic(exc.errors()):
                errors.setdefault(error.field, error.message)
    if data is not None and not errors:
        # Leave the request's transaction before the network call (see start_checkout).
        session.rollback()
        try:
            started = donation_service.start_checkout(
                request.app.state.engine,
                settings=settings,
                campaign_slug=slug,
                data=data,
                locale=locale,
            )
        except ProblemError as exc:
            limits = {
                "amount_too_small": rules.format(rules.minimum, locale),
                "amount_too_large": rules.format(rules.maximum, locale),
            }
            if exc.errors:
                for error in exc.errors:
                    errors[error.field] = translate(
                        locale, f"errors.{error.type}", limit=limits.get(error.type, "")
                    )
            else:
                errors["form"] = translate(locale, f"donate.problem.{exc.slug}")
        else:
            return RedirectResponse(started.checkout_url, status_code=303)
    context["errors"] = errors
    return page_templates().TemplateResponse(request, "donate.html", context, status_code=422)


@router.get("/campaigns/{slug}/donate/thanks", response_class=HTMLResponse)
def donate_thanks(slug: str, request: Request, session: SessionDep) -> Response:
    context = _context(request, session, slug, None, None)
    return page_templates().TemplateResponse(request, "donate_thanks.html", context)
