"""E-mails of the letters domain, rendered by the outbox worker at send time."""

from __future__ import annotations

from html import escape
from typing import Any

from sqlmodel import Session

from app.core.config import Settings
from app.core.i18n import translate
from app.core.templating import render_email
from app.email.service import Attachment, EmailMessage, Undeliverable, after_sent, renderer
from app.letters import defaults, engine, review, supporters, templates
from app.letters import petition_delivery as delivery_service
from app.letters.models import (
    DeliveryState,
    Letter,
    LetterDelivery,
    LetterStatus,
    PetitionDelivery,
    TemplateKind,
)
from app.petitions.models import Petition
from app.targets.models import Target

ANNEX_PLAIN_MAX_BYTES = 10_000_000


@renderer("letter_confirmation")
def confirmation(
    session: Session, payload: dict[str, Any], settings: Settings
) -> EmailMessage | None:
    letter = session.get(Letter, payload["letter_id"])
    if letter is None or letter.status != LetterStatus.unconfirmed:
        return None  # confirmed or replaced meanwhile
    petition = session.get(Petition, letter.petition_id)
    if petition is None:
        return None
    assert letter.id is not None
    locale = payload.get("locale") or letter.locale

    def t(key: str, **values: Any) -> str:
        return translate(locale, key, **values)

    text_locale = locale if locale in petition.translations else petition.default_locale
    title = petition.text(text_locale)["title"]
    token = supporters.confirmation_token(settings, letter_id=letter.id)
    text, html = render_email(
        "letter_confirmation",
        t=t,
        locale=locale,
        name=letter.name,
        title=title,
        held=letter.held_reason is not None,
        confirm_url=settings.public_url(f"/letters/confirm/{token}?lang={locale}"),
        ttl_days=max(1, settings.CONFIRMATION_TOKEN_TTL_HOURS // 24),
    )
    return EmailMessage(
        to=letter.email,
        to_name=letter.name,
        subject=t("letters.email.subject", title=title),
        text=text,
        html=html,
        headers={"Content-Language": locale},
    )


def delivery_template(
    session: Session, *, petition: Petition, language: str
) -> tuple[str, str, str]:
    """(language, subject, body) of the delivery letter for a target writing in `language`:
    the campaign's template in that language, else the built-in one, else English."""
    for candidate in dict.fromkeys([language, language.split("-")[0]]):
        saved = templates.find_template(
            session,
            campaign_id=petition.campaign_id,
            kind=TemplateKind.delivery,
            language=candidate,
        )
        if saved is not None:
            return candidate, saved.subject, saved.body
        if candidate in defaults.DELIVERY:
            return candidate, *defaults.DELIVERY[candidate]
    saved = templates.find_template(
        session, campaign_id=petition.campaign_id, kind=TemplateKind.delivery, language="en"
    )
    if saved is not None:
        return "en", saved.subject, saved.body
    return "en", *defaults.DELIVERY["en"]


def render_delivery(
    session: Session, delivery: LetterDelivery, settings: Settings
) -> tuple[engine.Rendered, Target, Letter | None, PetitionDelivery | None, Petition] | None:
    """The letter of a delivery as its target receives it (e-mail, or the printed PDF)."""
    if delivery.state == DeliveryState.cancelled:
        return None
    target = session.get(Target, delivery.target_id)
    petition = session.get(Petition, delivery.petition_id)
    if target is None or petition is None:
        return None
    if delivery.letter_id is not None:
        letter = session.get(Letter, delivery.letter_id)
        # (A superseded letter's deliveries that were already queued still go out: only its
        # held ones were cancelled.)
        if letter is None or letter.status == LetterStatus.unconfirmed:
            return None
        template = templates.supporter_template(session, petition=petition, locale=letter.locale)
        if template is None:
            return None  # the campaign withdrew its letter template
        context = templates.letter_context(
            session,
            settings=settings,
            petition=petition,
            target=target,
            language=template.language,
        )
        context.update(templates.supporter_vars(letter, template.language))
        return (
            engine.render(template.subject, template.body, context, language=template.language),
            target,
            letter,
            None,
            petition,
        )
    petition_delivery = session.get(PetitionDelivery, delivery.petition_delivery_id)
    if petition_delivery is None or not petition_delivery.annex_gzip:
        return None  # (an annex removed after the retention period is not sent any more)
    language, subject, body = delivery_template(
        session, petition=petition, language=target.language
    )
    context = templates.letter_context(
        session,
        settings=settings,
        petition=petition,
        target=target,
        language=language,
        today=petition_delivery.created_at.date(),
    )
    context["delivery"] = delivery_service.delivery_vars(
        petition_delivery, petition, language, settings
    )
    content = engine.render(subject, body, context, language=language)
    return content, target, None, petition_delivery, petition


@renderer("letter")
def letter(session: Session, payload: dict[str, Any], settings: Settings) -> EmailMessage | None:
    delivery = session.get(LetterDelivery, payload["delivery_id"])
    if delivery is None:
        return None
    try:
        rendered = render_delivery(session, delivery, settings)
    except engine.TemplateProblem as exc:
        # Over its budget, or broken: rendering it again would fail again (and spend the
        # budget again), so the letter fails now, with the reason in the delivery log.
        raise Undeliverable(f"the letter's template fails: {exc.describe()}") from exc
    if rendered is None:
        return None
    content, target, supporter_letter, petition_delivery, petition = rendered
    if target.retired_at is not None or not target.email:
        return None  # no longer addressed, or no longer reachable by e-mail
    message = EmailMessage(
        to=target.email,
        to_name=target.text(target.language)["name"],
        subject=content.subject,
        text=content.text,
        html=content.html,
        headers={
            "Content-Language": supporter_letter.locale if supporter_letter else target.language
        },
    )
    if supporter_letter is not None:
        # The official answers the supporter, not us.
        message.reply_to = [(supporter_letter.name, supporter_letter.email)]
        message.from_name = translate(
            supporter_letter.locale,
            "letters.via",
            name=supporter_letter.name,
            site=settings.MAIL_FROM_NAME,
        )
    if petition_delivery is not None:
        filename = delivery_service.annex_filename(petition, petition_delivery.number)
        # A big annex travels gzip-compressed, and one too big for mail servers (which refuse
        # messages over 10-25 MB) as a link in the letter (delivery.annex_url); the
        # manifest's SHA-256 is that of the CSV either way.
        if not delivery_service.annex_attached(settings, petition_delivery):
            annex = []
            url = delivery_service.annex_url(settings, petition_delivery)
            if url not in message.text:  # a template written before delivery.annex_url existed
                line = translate(
                    target.language,
                    "letters.annex_link",
                    filename=filename,
                    count=petition_delivery.annex_rows,
                    url=url,
                )
                message.text += f"\n\n{line}"
                message.html += f"<p>{escape(line)}</p>"
        elif petition_delivery.annex_bytes > ANNEX_PLAIN_MAX_BYTES:
            annex = [Attachment(filename + ".gz", petition_delivery.annex_gzip, "application/gzip")]
        else:
            annex = [
                Attachment(
                    filename, delivery_service.annex(petition_delivery), delivery_service.ANNEX_TYPE
                )
            ]
        message.attachments = [
            *annex,
            Attachment(
                filename="manifest.json",
                content=delivery_service.manifest(petition_delivery, petition, settings),
                media_type="application/json",
            ),
        ]
    return message


@after_sent("letter")
def letters_sent(session: Session, payloads: list[dict[str, Any]]) -> None:
    """Letters the officials' mail servers accepted: announced to the campaigns' webhooks in
    the transaction that marks them sent."""
    for payload in payloads:
        delivery = session.get(LetterDelivery, payload["delivery_id"])
        if delivery is not None:
            review.announce_sent(session, delivery=delivery)
