"""E-mails about signatures, rendered by the outbox worker at send time."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from sqlmodel import Session, col, select

from app.core.config import Settings
from app.core.i18n import translate
from app.core.templating import render_email_for
from app.email.service import EmailMessage, prefetcher, renderer
from app.petitions.models import Petition
from app.rights import service as rights_service
from app.signatures import service as signature_service
from app.signatures.models import Signature, SignatureStatus


@prefetcher("signature_confirmation", "signature_already_signed")
def _prefetch(session: Session, payloads: list[dict[str, Any]]) -> list[Any]:
    ids = [payload["signature_id"] for payload in payloads]
    signatures = list(session.exec(select(Signature).where(col(Signature.id).in_(ids))))
    petition_ids = {signature.petition_id for signature in signatures}
    petitions = list(session.exec(select(Petition).where(col(Petition.id).in_(petition_ids))))
    return [*signatures, *petitions]


def _load(session: Session, payload: dict[str, Any]) -> tuple[Signature, Petition] | None:
    signature = session.get(Signature, payload["signature_id"])
    if signature is None:
        return None
    petition = session.get(Petition, signature.petition_id)
    if petition is None:
        return None
    return signature, petition


def _message(
    template: str,
    *,
    settings: Settings,
    signature: Signature,
    petition: Petition,
    subject_key: str,
    links: dict[str, str] | None = None,
    **shared: Hashable,
) -> EmailMessage:
    """The e-mail `template` to a signer: rendered once per petition, language and `shared`
    values, with the signer's name and links (`links`, and the page to manage their data)
    filled in (render_email_for)."""
    locale = signature.locale
    title = petition.text(locale)["title"]
    assert signature.id is not None
    # Every e-mail to a signer lets them withdraw, stop updates, or download their data.
    manage_url = rights_service.manage_url(settings, signature_id=signature.id, locale=locale)
    text, html = render_email_for(
        template,
        locale=locale,
        personal={"name": signature.name, "manage_url": manage_url, **(links or {})},
        title=title,
        petition_url=settings.public_url(f"/petitions/{petition.slug}?lang={locale}"),
        **shared,
    )
    return EmailMessage(
        to=signature.email,
        to_name=signature.name,
        subject=translate(locale, subject_key, title=title),
        text=text,
        html=html,
        headers={"Content-Language": locale},
    )


@renderer("signature_confirmation")
def confirmation(
    session: Session, payload: dict[str, Any], settings: Settings
) -> EmailMessage | None:
    loaded = _load(session, payload)
    if loaded is None or loaded[0].status != SignatureStatus.pending:
        return None  # withdrawn, or confirmed meanwhile: nothing to confirm
    signature, petition = loaded
    assert signature.id is not None
    token = signature_service.confirmation_token(settings, signature_id=signature.id)
    return _message(
        "signature_confirmation",
        settings=settings,
        signature=signature,
        petition=petition,
        subject_key="email.confirm.subject",
        links={
            "confirm_url": settings.public_url(
                f"/signatures/confirm/{token}?lang={signature.locale}"
            )
        },
        ttl_days=max(1, settings.CONFIRMATION_TOKEN_TTL_HOURS // 24),
    )


@renderer("signature_already_signed")
def already_signed(
    session: Session, payload: dict[str, Any], settings: Settings
) -> EmailMessage | None:
    loaded = _load(session, payload)
    if loaded is None:
        return None
    signature, petition = loaded
    return _message(
        "signature_already_signed",
        settings=settings,
        signature=signature,
        petition=petition,
        subject_key="email.already.subject",
    )
