"""The share card (PNG) and the count badge (SVG): public reads, cached like petition pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from app.core.config import Settings
from app.core.http import cached_read
from app.core.i18n import request_locale, translate
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.sharing.badge import badge_svg
from app.sharing.card import card_png
from app.signatures import service as signature_service

router = APIRouter(include_in_schema=False)


def _petition(request: Request, session: Session, slug: str) -> tuple[Petition, str, int]:
    """The public petition, the language asked for (`?lang=`, then Accept-Language), and its
    confirmed count."""
    settings: Settings = request.app.state.settings
    petition = petition_service.get_public(session, slug=slug, cache_seconds=settings.CACHE_SECONDS)
    assert petition.id is not None
    locale = request_locale(request, available=petition.locales, default=petition.default_locale)
    return petition, locale, signature_service.confirmed_count(session, petition_id=petition.id)


@router.get("/petitions/{slug}/card.png")
async def share_card(slug: str, request: Request) -> Response:
    """The petition's share card (og:image) in `?lang=`; `?n=` (the count shown) is only there
    to give a new count a new address: the card always shows the count now."""
    settings: Settings = request.app.state.settings

    def build(session: Session) -> Response:
        petition, locale, count = _petition(request, session, slug)
        png = card_png(
            petition_id=petition.id or 0,
            title=petition.text(locale)["title"],
            count=count,
            goal=petition.goal,
            locale=locale,
            font_paths=settings.PDF_FONTS,
        )
        return Response(png, media_type="image/png")

    return await cached_read(request, settings.CACHE_SECONDS, build)


@router.get("/petitions/{slug}/badge.svg")
async def count_badge(slug: str, request: Request) -> Response:
    """A badge with the petition's confirmed count, for other sites to show as an image."""
    settings: Settings = request.app.state.settings

    def build(session: Session) -> Response:
        petition, locale, count = _petition(request, session, slug)
        value = translate(locale, "petition.count", count=count)
        svg = badge_svg(
            label=translate(locale, "badge.label"),
            value=value,
            title=f"{petition.text(locale)['title']}: {value}",
            font_paths=settings.PDF_FONTS,
        )
        return Response(svg, media_type="image/svg+xml; charset=utf-8")

    return await cached_read(request, settings.CACHE_SECONDS, build)
