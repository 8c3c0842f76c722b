"""The HTML sign form, wherever it is shown: the petition page and the embeddable form post it.

One path for both, and the API's path once the form is parsed (SigningBatcher.sign: the
CAPTCHA, the petition's state, the abuse controls, the batch's commit), so a signature from a
frame on another site gets exactly the checks of the petition page and of the API, and the same
double opt-in. The form holds no database connection while its signature waits for the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Form, Request
from pydantic import ValidationError
from sqlmodel import Session

from app.abuse.service import SigningSource
from app.core.errors import FieldError, ProblemError, field_errors_from_pydantic
from app.core.i18n import error_message, negotiate, translate
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.signatures.models import SignatureCreate

T = TypeVar("T")
# The form's names for the fields whose API names differ.
FORM_FIELDS = {"captcha_token": "captcha"}


def in_own_session(request: Request, work: Callable[[Session], T]) -> T:
    """`work` with a session of its own (run it in the thread pool): a form holds no
    connection while its signature waits for the batch's commit."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        return work(session)


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


def _show(errors: dict[str, str], found: list[FieldError], locale: str) -> None:
    """Each field's first problem, in the page's language, beside the field."""
    for error in found:
        name = FORM_FIELDS.get(error.field, error.field)
        errors.setdefault(name, error_message(locale, error.type, error.message))


async def submit(request: Request, *, petition: Petition, fields: SignFormFields) -> SignOutcome:
    """Check the form and sign through the signing batcher; returns once the signature is
    committed, or with the errors (in the page's language, keyed by field: `form` for the
    petition as a whole, `captcha`) and nothing stored."""
    chosen = negotiate(
        query=fields.locale[:35],
        accept_language=request.headers.get("accept-language"),
        available=petition.locales,
        default=petition.default_locale,
    )
    outcome = SignOutcome(locale=chosen, form=fields.shown())
    try:
        data = SignatureCreate.model_validate(
            {
                **outcome.form,
                "postcode": fields.postcode or None,
                "locale": chosen,
                "captcha_token": fields.captcha_response or None,
            }
        )
    except ValidationError as exc:
        _show(outcome.errors, field_errors_from_pydantic(exc.errors()), chosen)
        return outcome
    try:
        await request.app.state.signing.sign(
            slug=petition.slug,
            data=data,
            accept_language=request.headers.get("accept-language"),
            source=SigningSource(
                ip=request.client.host if request.client else None,
                honeypot=bool(fields.website.strip()),
            ),
        )
    except petition_service.Refusal as exc:
        outcome.errors["form"] = translate(chosen, f"petition.refusal.{exc.reason}")
    except ProblemError as exc:
        if not exc.errors:  # not about a field (the petition was deleted meanwhile, ...)
            raise
        _show(outcome.errors, exc.errors, chosen)
    return outcome
