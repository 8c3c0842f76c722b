"""The HTML sign form, wherever it is shown: the petition page and the embeddable form post here.

One path for both, so a signature from a frame on another site gets exactly the checks of the
petition page (validation, the CAPTCHA, the honeypot, the abuse controls) and the same double
opt-in: it is stored pending and its confirmation e-mail queued (signature_service.sign).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Form, Request
from pydantic import ValidationError
from sqlmodel import Session

from app.abuse import service as abuse_service
from app.abuse.service import SigningSource
from app.core.config import Settings
from app.core.errors import ProblemError, field_errors_from_pydantic
from app.core.i18n import negotiate, translate
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.signatures import service as signature_service
from app.signatures.models import SignatureCreate


@dataclass(frozen=True)
class SignFormFields:
    """What the form posts, as typed."""

    name: str
    email: str
    country: str
    postcode: str
    consent_updates: str
    locale: str
    website: str  # the honeypot: hidden from people, filled by bots
    captcha_response: str

    def shown(self) -> dict[str, Any]:
        """The fields to show again next to their errors."""
        return {
            "name": self.name,
            "email": self.email,
            "country": self.country,
            "postcode": self.postcode,
            "consent_updates": bool(self.consent_updates),
        }


def sign_form_fields(
    name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    country: Annotated[str, Form()] = "",
    postcode: Annotated[str, Form()] = "",
    consent_updates: Annotated[str, Form()] = "",
    locale: Annotated[str, Form()] = "",
    website: Annotated[str, Form()] = "",
    captcha_response: Annotated[str, Form(alias="cf-turnstile-response")] = "",
    hcaptcha_response: Annotated[str, Form(alias="h-captcha-response")] = "",
) -> SignFormFields:
    """The dependency that reads the form."""
    return SignFormFields(
        name=name,
        email=email,
        country=country,
        postcode=postcode,
        consent_updates=consent_updates,
        locale=locale,
        website=website,
        captcha_response=captcha_response or hcaptcha_response,
    )


@dataclass
class SignOutcome:
    locale: str  # the language chosen for the page and the e-mail
    form: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)


def submit(
    request: Request,
    session: Session,
    settings: Settings,
    *,
    petition: Petition,
    fields: SignFormFields,
) -> SignOutcome:
    """Check the form and sign: errors are in the outcome, in the page's language, keyed by
    field (`form` for the petition as a whole, `captcha`); nothing is stored when there are."""
    chosen = negotiate(
        query=fields.locale[:35],
        accept_language=request.headers.get("accept-language"),
        available=petition.locales,
        default=petition.default_locale,
    )
    outcome = SignOutcome(locale=chosen, form=fields.shown())
    data: SignatureCreate | None = None
    try:
        data = SignatureCreate.model_validate(
            {**outcome.form, "postcode": fields.postcode or None, "locale": chosen}
        )
    except ValidationError as exc:
        for error in field_errors_from_pydantic(exc.errors()):
            key = f"errors.{error.type}"
            message = translate(chosen, key)
            outcome.errors.setdefault(error.field, message if message != key else error.message)
    refusal = petition_service.refusal_reason(petition)
    if refusal is not None:
        outcome.errors["form"] = translate(chosen, f"petition.refusal.{refusal}")
    ip = request.client.host if request.client else None
    if not outcome.errors:
        try:
            abuse_service.check_captcha(settings, token=fields.captcha_response or None, ip=ip)
        except ProblemError:
            outcome.errors["captcha"] = translate(chosen, "errors.captcha_failed")
    if outcome.errors or data is None:
        return outcome
    signature_service.sign(
        session,
        petition=petition,
        data=data,
        locale=chosen,
        settings=settings,
        source=SigningSource(ip=ip, honeypot=bool(fields.website.strip())),
    )
    return outcome
