"""Letters through the JSON API: supporters write and confirm; organisers manage templates,
deliver petitions and follow every letter in the delivery log."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic_core import PydanticCustomError

from app.abuse import service as abuse_service
from app.abuse.service import SigningSource
from app.auth.deps import CurrentUser
from app.campaigns import service as campaign_service
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import Problem, ProblemError, field_problem
from app.core.http import json_response
from app.core.i18n import negotiate
from app.letters import delivery_log as letter_log
from app.letters import engine, pdf, review, supporters, templates
from app.letters import petition_delivery as delivery_service
from app.letters.models import (
    DeliveryCreate,
    DeliveryLog,
    DeliveryLogEntry,
    DeliveryState,
    LetterAccepted,
    LetterConfirmResult,
    LetterCreate,
    LetterTemplatePublic,
    PetitionDeliveriesAdmin,
    PetitionDeliveryAdmin,
    Preview,
    PreviewRequest,
    TemplateAdmin,
    TemplateKind,
    TemplatesAdmin,
    TemplateSave,
)
from app.petitions import service as petition_service
from app.petitions.models import DB_INT_MAX
from app.signatures.models import ConfirmRequest
from app.targets.models import check_language

router = APIRouter(tags=["letters"])
admin_router = APIRouter()

PROBLEM: dict[str, Any] = {"model": Problem, "content": {"application/problem+json": {}}}
READ: dict[int | str, dict[str, Any]] = {404: PROBLEM}
WRITE: dict[int | str, dict[str, Any]] = {404: PROBLEM, 409: PROBLEM, 422: PROBLEM}
TEMPLATES: list[str | Enum] = ["admin: letter templates"]
DELIVERY: list[str | Enum] = ["admin: letters and deliveries"]

LetterIdPath = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
NumberPath = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
LanguagePath = Annotated[str, Path(max_length=35, examples=["uk"])]


def _language(value: str) -> str:
    try:
        return check_language(value)
    except PydanticCustomError as exc:
        raise field_problem("language", exc.type, str(exc)) from None


# --- supporters -------------------------------------------------------------------------------


@router.get(
    "/petitions/{slug}/letter", response_model=LetterTemplatePublic, responses={404: PROBLEM}
)
def letter_template(
    slug: str,
    request: Request,
    session: SessionDep,
    lang: Annotated[str | None, Query(max_length=35)] = None,
) -> JSONResponse:
    """The text a supporter's letter starts from, and the officials it can go to."""
    petition = petition_service.get_public(session, slug=slug)
    locale = negotiate(
        query=lang,
        accept_language=request.headers.get("accept-language"),
        available=petition.locales,
        default=petition.default_locale,
    )
    template = templates.supporter_template(session, petition=petition, locale=locale)
    if template is None:
        raise ProblemError(404, "letters-closed", "This petition takes no letters")
    targets = [
        {"key": t.key, **t.text(locale)}
        for t in petition_service.letter_targets(session, petition=petition)
    ]
    return json_response(
        LetterTemplatePublic(language=template.language, message=template.message, targets=targets)
    )


@router.post(
    "/petitions/{slug}/letters",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=LetterAccepted,
    responses={404: PROBLEM, 409: PROBLEM, 422: PROBLEM},
)
def write_letter(
    slug: str, body: LetterCreate, request: Request, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Write to some of the petition's officials. Nothing is sent until the supporter confirms
    their address with the link e-mailed to them."""
    petition = petition_service.get_public(session, slug=slug)
    locale = negotiate(
        query=body.locale,
        accept_language=request.headers.get("accept-language"),
        available=petition.locales,
        default=petition.default_locale,
    )
    ip = request.client.host if request.client else None
    abuse_service.check_captcha(settings, token=body.captcha_token, ip=ip)
    accepted = supporters.submit(
        session,
        petition=petition,
        data=body,
        locale=locale,
        settings=settings,
        source=SigningSource(ip=ip),
    )
    return json_response(accepted, status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/letters/confirm",
    response_model=LetterConfirmResult,
    responses={404: PROBLEM, 409: PROBLEM, 410: PROBLEM, 422: PROBLEM},
)
def confirm_letter(
    body: ConfirmRequest, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Confirm a letter with the token from the e-mail: it is then sent. Idempotent."""
    confirmed = supporters.confirm(session, token=body.token, settings=settings)
    return json_response(confirmed.result)


# --- organisers: templates --------------------------------------------------------------------


@admin_router.get(
    "/campaigns/{slug}/letter-templates",
    tags=TEMPLATES,
    response_model=TemplatesAdmin,
    responses=READ,
)
def list_templates(slug: str, user: CurrentUser, session: SessionDep) -> JSONResponse:
    """The campaign's letter templates, and the variables each kind may use."""
    campaign = campaign_service.managed(session, user=user, slug=slug)
    assert campaign.id is not None
    return json_response(
        TemplatesAdmin(
            data=templates.list_templates(session, campaign_id=campaign.id),
            variables={str(k): v for k, v in engine.VARIABLES.items()},
        )
    )


@admin_router.put(
    "/campaigns/{slug}/letter-templates/{kind}/{language}",
    tags=TEMPLATES,
    response_model=TemplateAdmin,
    responses=WRITE,
)
def save_template(
    slug: str,
    kind: TemplateKind,
    language: LanguagePath,
    body: TemplateSave,
    user: CurrentUser,
    session: SessionDep,
) -> JSONResponse:
    """Create or replace the template. A syntax error, an unknown variable or field, or a reach
    for Python internals is a 422 naming the part, the line and the problem."""
    campaign = campaign_service.managed(session, user=user, slug=slug)
    template = templates.save_template(
        session, actor=user, campaign=campaign, kind=kind, language=_language(language), data=body
    )
    return json_response(templates.template_to_admin(template))


@admin_router.delete(
    "/campaigns/{slug}/letter-templates/{kind}/{language}",
    tags=TEMPLATES,
    status_code=status.HTTP_204_NO_CONTENT,
    responses=READ,
)
def delete_template(
    slug: str, kind: TemplateKind, language: LanguagePath, user: CurrentUser, session: SessionDep
) -> Response:
    campaign = campaign_service.managed(session, user=user, slug=slug)
    templates.delete_template(
        session, actor=user, campaign=campaign, kind=kind, language=_language(language)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@admin_router.post(
    "/campaigns/{slug}/letter-templates/{kind}/{language}/preview",
    tags=TEMPLATES,
    response_model=Preview,
    responses=WRITE,
)
def preview_template(
    slug: str,
    kind: TemplateKind,
    language: LanguagePath,
    body: PreviewRequest,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> JSONResponse:
    """The letter as a target would receive it, with a sample supporter (or the latest
    delivery's figures). Send `subject`/`body` to try a text before saving it."""
    campaign = campaign_service.managed(session, user=user, slug=slug)
    rendered = templates.preview(
        session,
        settings=settings,
        campaign=campaign,
        kind=kind,
        language=_language(language),
        data=body,
    )
    return json_response(Preview(subject=rendered.subject, text=rendered.text, html=rendered.html))


# --- organisers: the delivery log -------------------------------------------------------------


@admin_router.get(
    "/petitions/{slug}/letters", tags=DELIVERY, response_model=DeliveryLog, responses=READ
)
def delivery_log(
    slug: str,
    user: CurrentUser,
    session: SessionDep,
    state: DeliveryState | None = None,
    after: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JSONResponse:
    """Every letter to the petition's officials, supporters' and deliveries', oldest first:
    its state (queued, sent, failed with the reason, held, cancelled) and timestamps."""
    petition = petition_service.managed(session, user=user, slug=slug)
    assert petition.id is not None
    entries, next_after = letter_log.log(
        session, petition_id=petition.id, state=state, after=after, limit=limit
    )
    return json_response(DeliveryLog(data=entries, next_after=next_after))


def _entry_response(session: SessionDep, delivery_id: int | None) -> JSONResponse:
    assert delivery_id is not None
    return json_response(letter_log.log_entry(session, delivery_id=delivery_id))


@admin_router.post(
    "/letters/{letter_id}/release",
    tags=DELIVERY,
    response_model=DeliveryLogEntry,
    responses=WRITE,
)
def release_letter(
    letter_id: LetterIdPath, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Send a letter held for review (a near-duplicate) after all."""
    delivery = review.managed_delivery(session, user=user, delivery_id=letter_id)
    review.release(session, actor=user, delivery=delivery, settings=settings)
    return _entry_response(session, delivery.id)


@admin_router.post(
    "/letters/{letter_id}/discard",
    tags=DELIVERY,
    response_model=DeliveryLogEntry,
    responses=WRITE,
)
def discard_letter(letter_id: LetterIdPath, user: CurrentUser, session: SessionDep) -> JSONResponse:
    """Never send a letter held for review."""
    delivery = review.managed_delivery(session, user=user, delivery_id=letter_id)
    review.discard(session, actor=user, delivery=delivery)
    return _entry_response(session, delivery.id)


@admin_router.post(
    "/letters/{letter_id}/posted",
    tags=DELIVERY,
    response_model=DeliveryLogEntry,
    responses=WRITE,
)
def mark_posted(letter_id: LetterIdPath, user: CurrentUser, session: SessionDep) -> JSONResponse:
    """Record that a printed (postal) letter was posted: it counts as sent."""
    delivery = review.managed_delivery(session, user=user, delivery_id=letter_id)
    review.mark_posted(session, actor=user, delivery=delivery)
    return _entry_response(session, delivery.id)


@admin_router.get(
    "/letters/{letter_id}/letter.pdf",
    tags=DELIVERY,
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **READ, 409: PROBLEM, 503: PROBLEM},
)
def letter_pdf(
    letter_id: LetterIdPath, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """The letter as a printable A4 PDF (for officials reached by post; any letter prints)."""
    delivery = review.managed_delivery(session, user=user, delivery_id=letter_id)
    document = pdf.printable(session, delivery=delivery, settings=settings)
    return Response(
        document,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="letter-{letter_id}.pdf"'},
    )


# --- organisers: petition delivery ------------------------------------------------------------


@admin_router.post(
    "/petitions/{slug}/deliveries",
    tags=DELIVERY,
    status_code=status.HTTP_201_CREATED,
    response_model=PetitionDeliveryAdmin,
    responses={
        200: {
            "model": PetitionDeliveryAdmin,
            "description": "Delivered before: nothing sent again",
        },
        **WRITE,
    },
)
def deliver_petition(
    slug: str,
    body: DeliveryCreate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Deliver the petition to each of its officials: a letter with the confirmed count and a
    per-country summary, the signatures as a CSV annex and a manifest with the annex's SHA-256.
    Calling it again returns the earlier delivery (200) unless `new` is true."""
    petition = petition_service.managed(session, user=user, slug=slug)
    delivery, created = delivery_service.deliver(
        session, actor=user, petition=petition, data=body, settings=settings
    )
    return json_response(
        delivery_service.to_admin(session, delivery), status_code=201 if created else 200
    )


@admin_router.get(
    "/petitions/{slug}/deliveries",
    tags=DELIVERY,
    response_model=PetitionDeliveriesAdmin,
    responses=READ,
)
def list_deliveries(slug: str, user: CurrentUser, session: SessionDep) -> JSONResponse:
    petition = petition_service.managed(session, user=user, slug=slug)
    assert petition.id is not None
    deliveries = delivery_service.list_deliveries(session, petition_id=petition.id)
    return json_response(
        PetitionDeliveriesAdmin(data=[delivery_service.to_admin(session, d) for d in deliveries])
    )


@router.get(
    "/annexes/{token}",
    tags=DELIVERY,
    response_class=Response,
    responses={200: {"content": {"application/gzip": {}}}, 404: PROBLEM, 410: PROBLEM},
)
def linked_annex(token: str, session: SessionDep, settings: SettingsDep) -> Response:
    """A delivered petition's list of signatories, gzip-compressed, from the link in the
    letter to an official (sent instead of an attachment when the list is too big to mail)."""
    delivery, petition = delivery_service.linked_annex(session, token=token, settings=settings)
    filename = delivery_service.annex_filename(petition, delivery.number) + ".gz"
    return Response(
        delivery_service.download_annex(
            session, actor=None, petition=petition, delivery=delivery, via="link", compressed=True
        ),
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@admin_router.get(
    "/petitions/{slug}/deliveries/{number}/annex.csv",
    tags=DELIVERY,
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **READ},
)
def delivery_annex(
    slug: str, number: NumberPath, user: CurrentUser, session: SessionDep
) -> Response:
    """The annex exactly as sent: its SHA-256 is the manifest's."""
    petition = petition_service.managed(session, user=user, slug=slug)
    delivery = delivery_service.get_delivery(session, petition=petition, number=number)
    filename = delivery_service.annex_filename(petition, number)
    return Response(
        delivery_service.download_annex(
            session, actor=user, petition=petition, delivery=delivery, via="api"
        ),
        media_type=delivery_service.ANNEX_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@admin_router.get(
    "/petitions/{slug}/deliveries/{number}/manifest.json",
    tags=DELIVERY,
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, **READ},
)
def delivery_manifest(
    slug: str, number: NumberPath, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> Response:
    petition = petition_service.managed(session, user=user, slug=slug)
    delivery = delivery_service.get_delivery(session, petition=petition, number=number)
    return Response(
        delivery_service.manifest(delivery, petition, settings), media_type="application/json"
    )
