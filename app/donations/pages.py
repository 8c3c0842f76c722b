"""The donate page (no JavaScript needed), its thank-you page, and the "manage my gift" page
that monthly receipts link to."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.core.config import Settings
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import ProblemError, field_errors_from_pydantic
from app.core.i18n import SUPPORTED_LOCALES, catalog, request_locale, translate
from app.core.templating import page_templates
from app.donations import donors
from app.donations import service as donation_service
from app.donations.currencies import CURRENCIES, DEFAULT_FOR_LOCALE, AmountError
from app.donations.models import DonationCreate, Frequency

router = APIRouter(include_in_schema=False)


def _context(
    request: Request,
    session: SessionDep,
    settings: Settings,
    slug: str,
    locale: str | None,
    currency: str | None,
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
        # Not configured (no Stripe key) or no currency: say so up front, with no form.
        "configured": donation_service.donations_configured(settings),
        "enabled": bool(accepted) and donation_service.donations_configured(settings),
        "example": rules.example(locale) if rules else "",
        "switch_path": f"/campaigns/{campaign.slug}/donate",
    }


def _status(context: dict[str, Any], ok: int = 200) -> int:
    # A site that takes no donations at all is a service not available (as the API's 503);
    # a campaign that takes no currency is a page that says so.
    return ok if context["configured"] else 503


def _error(locale: str, type_: str, fallback: str, **values: Any) -> str:
    """The form message for an error type: `donate.errors.<type>` or `errors.<type>`."""
    for key in (f"donate.errors.{type_}", f"errors.{type_}"):
        if key in catalog(locale) or key in catalog("en"):
            return translate(locale, key, **values)
    return fallback


@router.get("/campaigns/{slug}/donate", response_class=HTMLResponse)
def donate_page(
    slug: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    context = _context(request, session, settings, slug, None, request.query_params.get("currency"))
    return page_templates().TemplateResponse(
        request, "donate.html", context, status_code=_status(context)
    )


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
    context = _context(request, session, settings, slug, locale[:8], currency.upper()[:3])
    locale, rules = context["locale"], context["rules"]
    context["form"] = {
        "preset": preset,
        "custom_amount": custom_amount,
        "frequency": frequency,
        "email": email,
        "name": name,
    }
    if not context["enabled"]:
        # The page shows no form then; nothing is stored, nothing is sent to Stripe.
        return page_templates().TemplateResponse(
            request, "donate.html", context, status_code=_status(context, 422)
        )
    errors: dict[str, str] = {}
    amount = 0
    example = context["example"]
    if len(custom_amount) > 30:
        errors["amount"] = _error(locale, "amount_invalid", "", example=example)
    elif custom_amount.strip():
        try:
            amount = rules.to_minor(custom_amount, locale=locale)
        except AmountError as exc:
            errors["amount"] = _error(
                locale, exc.type, str(exc), amount=custom_amount.strip(), example=example
            )
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
                email=email,
                name=name,
                locale=locale,
            )
        except ValidationError as exc:
            for error in field_errors_from_pydantic(exc.errors()):
                errors.setdefault(error.field, _error(locale, error.type, error.message))
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
                    errors[error.field] = _error(
                        locale, error.type, error.message, limit=limits.get(error.type, "")
                    )
            else:
                errors["form"] = translate(locale, f"donate.problem.{exc.slug}")
        else:
            return RedirectResponse(started.checkout_url, status_code=303)
    context["errors"] = errors
    return page_templates().TemplateResponse(request, "donate.html", context, status_code=422)


@router.get("/campaigns/{slug}/donate/thanks", response_class=HTMLResponse)
def donate_thanks(
    slug: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    context = _context(request, session, settings, slug, None, None)
    return page_templates().TemplateResponse(request, "donate_thanks.html", context)


# --- managing a monthly gift ------------------------------------------------------------------

# The token is in the URL: never cached, indexed, or named in a Referer header.
PRIVATE = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex", "Cache-Control": "no-store"}


def _manage_locale(request: Request, fallback: str | None = None) -> str:
    lang = request.query_params.get("lang")
    if lang in SUPPORTED_LOCALES:
        return lang
    return fallback if fallback in SUPPORTED_LOCALES else request_locale(request)


def _manage_failed(request: Request, token: str, exc: ProblemError) -> Response:
    locale = _manage_locale(request)
    known = f"donate.manage.problem.{exc.slug}" in catalog("en")
    return page_templates().TemplateResponse(
        request,
        "donate_manage.html",
        {
            "locale": locale,
            "locales": list(SUPPORTED_LOCALES),
            "switch_path": f"/donations/manage/{token}",
            "problem": exc.slug if known else "payment-provider-error",
            "gift": None,
        },
        status_code=exc.status,
        headers=PRIVATE,
    )


@router.get("/donations/manage/{token}", response_class=HTMLResponse)
def manage_gift_page(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    # Changes nothing and calls nobody: mail scanners follow links.
    try:
        gift = donors.load(session, token=token, settings=settings)
    except ProblemError as exc:
        return _manage_failed(request, token, exc)
    donation, campaign = gift.donation, gift.campaign
    locale = _manage_locale(request, donation.locale)
    rules = CURRENCIES.get(donation.currency)
    names = campaign.translations.get(locale) or campaign.translations[campaign.default_locale]
    context = {
        "locale": locale,
        "locales": list(SUPPORTED_LOCALES),
        "switch_path": f"/donations/manage/{token}",
        "token": token,
        "gift": donation,
        "problem": None,
        "amount": rules.format(donation.amount, locale) if rules else f"{donation.amount}",
        "campaign_name": names["name"],
        "can_manage": bool(donation.stripe_customer_id),
    }
    return page_templates().TemplateResponse(
        request, "donate_manage.html", context, headers=PRIVATE
    )


@router.post("/donations/manage/{token}/portal", response_class=HTMLResponse)
def manage_gift_portal(token: str, request: Request, settings: SettingsDep) -> Response:
    """To Stripe's billing portal, where the donor stops the gift or changes the card."""
    try:
        url = donors.billing_portal_url(
            request.app.state.engine,
            settings=settings,
            token=token,
            locale=_manage_locale(request),
        )
    except ProblemError as exc:
        return _manage_failed(request, token, exc)
    return RedirectResponse(url, status_code=303, headers=PRIVATE)
