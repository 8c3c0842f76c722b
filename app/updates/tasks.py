"""Outbox renderer of campaign updates, built at send time in each signer's language."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.core.config import Settings
from app.core.templating import render_email_for
from app.email.service import EmailMessage, renderer
from app.petitions.models import Petition
from app.rights.service import manage_url
from app.signatures.models import Signature, SignatureStatus
from app.updates import service as update_service
from app.updates.models import PetitionUpdate


def _paragraphs(body: str) -> tuple[tuple[str, ...], ...]:
    """Paragraphs (split at blank lines) of lines, for the HTML part (escaped by the template)."""
    return tuple(
        tuple(block.strip("\n").split("\n")) for block in body.split("\n\n") if block.strip()
    )


@renderer(update_service.KIND)
def petition_update(
    session: Session, payload: dict[str, Any], settings: Settings
) -> EmailMessage | None:
    signature = session.get(Signature, payload["signature_id"])
    if (
        signature is None
        or signature.status != SignatureStatus.confirmed
        or not signature.consent_updates
        or signature.anonymised_at is not None
        or update_service.is_unsubscribed(session, signature=signature)
    ):
        return None  # withdrew, unsubscribed or bounced since the update was queued
    record = session.get(PetitionUpdate, payload["update_id"])
    petition = session.get(Petition, signature.petition_id)
    if record is None or petition is None or not record.translations:
        return None
    assert signature.id is not None

    translations: dict[str, dict[str, str]] = record.translations
    if signature.locale in translations:
        locale = signature.locale
    elif petition.default_locale in translations:
        locale = petition.default_locale
    else:
        locale = sorted(translations)[0]
    content = translations[locale]

    unsubscribe_url = update_service.unsubscribe_url(settings, signature_id=signature.id)
    title = petition.text(locale)["title"]
    # Rendered once per update and language, with each signer's name and links filled in.
    text, html = render_email_for(
        "petition_update",
        locale=locale,
        personal={
            "name": signature.name,
            "unsubscribe_url": f"{unsubscribe_url}?lang={locale}",
            "manage_url": manage_url(settings, signature_id=signature.id, locale=locale),
        },
        title=title,
        subject=content["subject"],
        body=content["body"],
        paragraphs=_paragraphs(content["body"]),
        petition_url=settings.public_url(f"/petitions/{petition.slug}?lang={locale}"),
    )
    return EmailMessage(
        to=signature.email,
        to_name=signature.name,
        subject=content["subject"],
        text=text,
        html=html,
        headers={
            "Content-Language": locale,
            # RFC 2369 and RFC 8058: mail programs offer an "unsubscribe" button that POSTs
            # "List-Unsubscribe=One-Click" to this address.
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
