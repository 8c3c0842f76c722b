"""Sharing a petition: link preview tags, share links, the share card (PNG), the count badge."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageChops
from sqlmodel import Session

from app.core import cache, fonts
from app.core.config import Settings
from app.core.i18n import translate
from app.main import create_app
from app.sharing import card as share_card
from app.sharing.links import CARD_WIDTH, count_shown
from app.signatures import tally as signature_tally
from app.signatures.models import Signature, SignatureStatus
from tests.conftest import Mailbox, confirm_link
from tests.factories import make_petition
from tests.sharing.helpers import head_tags, png_size, png_texts
from tests.test_i18n import confirm_signers

SLUG = "no-forced-return"
BASE = "http://testserver"  # PUBLIC_BASE_URL of the tests' settings


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.mark.parametrize("locale", ["en", "ko", "uk"])
def test_petition_pages_tell_link_previews_about_the_petition_in_their_language(
    client: TestClient, demo: Any, locale: str
) -> None:
    text = demo.translations[locale]
    tags = head_tags(client.get(f"/petitions/{SLUG}?lang={locale}").text)
    url = f"{BASE}/petitions/{SLUG}?lang={locale}"
    assert tags.one("og:title") == tags.one("twitter:title") == text["title"]
    assert tags.one("og:description") == tags.one("twitter:description") == text["summary"]
    assert tags.one("description") == text["summary"]
    assert tags.one("og:url") == url
    assert tags.one("og:type") == "website"
    assert tags.one("og:locale") == {"en": "en_GB", "ko": "ko_KR", "uk": "uk_UA"}[locale]
    assert len(tags.meta["og:locale:alternate"]) == 2
    assert tags.one("twitter:card") == "summary_large_image"
    image = tags.one("og:image")
    assert image == tags.one("twitter:image")
    assert image == f"{BASE}/petitions/{SLUG}/card.png?lang={locale}&n=0"
    assert (tags.one("og:image:width"), tags.one("og:image:height")) == ("1200", "630")
    assert text["title"] in tags.one("og:image:alt")
    # Canonical: this language's address; alternates: every language, and x-default.
    [canonical] = [link["href"] for link in tags.links if link.get("rel") == "canonical"]
    assert canonical == url
    alternates = {
        link["hreflang"]: link["href"] for link in tags.links if link.get("rel") == "alternate"
    }
    assert alternates == {
        "en": f"{BASE}/petitions/{SLUG}?lang=en",
        "ko": f"{BASE}/petitions/{SLUG}?lang=ko",
        "uk": f"{BASE}/petitions/{SLUG}?lang=uk",
        "x-default": f"{BASE}/petitions/{SLUG}",
    }


def test_addresses_come_from_public_base_url_not_the_host_header(
    client: TestClient, demo: Any
) -> None:
    html = client.get(f"/petitions/{SLUG}", headers={"Host": "evil.example"}).text
    tags = head_tags(html)
    assert tags.one("og:url").startswith(f"{BASE}/")
    assert "evil.example" not in html


def share_links(html: str) -> dict[str, str]:
    """network -> href of the page's share links."""
    found: dict[str, str] = {}
    for part in html.split('data-network="')[1:]:
        network = part.split('"', 1)[0]
        href = html.split(f'data-network="{network}"', 1)[0].rsplit('href="', 1)[1].split('"')[0]
        found[network] = href.replace("&amp;", "&")
    return found


def check_share_links(html: str, locale: str, title: str) -> None:
    url = f"{BASE}/petitions/{SLUG}?lang={locale}"
    links = share_links(html)
    assert set(links) == {"email", "x", "facebook", "telegram", "kakaotalk"}
    mail = urlsplit(links["email"])
    assert mail.scheme == "mailto" and mail.path == ""
    mail_fields = parse_qs(mail.query)
    assert mail_fields["subject"] == [title]
    assert url in mail_fields["body"][0] and "\r\n" in mail_fields["body"][0]
    assert parse_qs(urlsplit(links["x"]).query) == {"text": [title], "url": [url]}
    assert links["x"].startswith("https://x.com/intent/tweet?")
    assert parse_qs(urlsplit(links["facebook"]).query) == {"u": [url]}
    assert links["telegram"].startswith("https://t.me/share/url?")
    assert parse_qs(urlsplit(links["telegram"]).query) == {"url": [url], "text": [title]}
    kakao = links["kakaotalk"]
    assert kakao.startswith("intent:#Intent;") and "package=com.kakao.talk" in kakao
    assert url in unquote(kakao)
    # Copying works without script: the address is in a read-only field, labelled.
    assert f'<input id="share-url" type="url" value="{url.replace("&", "&amp;")}" readonly>' in html
    assert '<label for="share-url">' in html
    assert '<script src="/static/share.js" defer></script>' in html


def test_the_petition_thanks_and_confirmed_pages_have_share_links(
    client: TestClient, demo: Any, smtp: Mailbox, outbox: Any
) -> None:
    title = demo.translations["uk"]["title"]
    check_share_links(client.get(f"/petitions/{SLUG}?lang=uk").text, "uk", title)
    signed = client.post(
        f"/petitions/{SLUG}/sign",
        data={"name": "Олена", "email": "olena@example.org", "country": "UA", "locale": "uk"},
    )
    assert signed.status_code == 200 and translate("uk", "thanks.title") in signed.text
    check_share_links(signed.text, "uk", title)
    outbox()
    [message] = smtp.wait_for(1)
    confirmed = client.post(confirm_link(message).removeprefix(BASE))
    assert translate("uk", "confirmed.title") in confirmed.text
    check_share_links(confirmed.text, "uk", title)
    # The share links carry the petition's address, never the confirmation link's token.
    token = confirm_link(message).split("/signatures/confirm/", 1)[1].split("?")[0]
    assert token not in "".join(share_links(confirmed.text).values())


def test_the_copy_script_is_a_static_file(client: TestClient) -> None:
    script = client.get("/static/share.js")
    assert script.status_code == 200
    assert "navigator.clipboard" in script.text


# --- the share card -------------------------------------------------------------------------


def test_count_shown_is_exact_below_100_then_rounded_down_to_two_digits() -> None:
    assert count_shown(0) == (0, True)
    assert count_shown(99) == (99, True)
    assert count_shown(100) == (100, True)
    assert count_shown(123) == (120, False)
    assert count_shown(12_345) == (12_000, False)
    assert count_shown(1_234_567) == (1_200_000, False)


@pytest.mark.parametrize("locale", ["en", "ko", "uk"])
def test_the_share_card_is_a_png_with_the_title_in_the_pages_language(
    client: TestClient, demo: Any, locale: str
) -> None:
    response = client.get(f"/petitions/{SLUG}/card.png?lang={locale}&n=0")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"].startswith("public")
    assert png_size(response.content) == (1200, 630)
    assert png_texts(response.content)["Title"] == demo.translations[locale]["title"]
    image = Image.open(io.BytesIO(response.content))
    image.load()  # decodes: a complete, valid image
    assert image.size == (1200, 630)


def test_hangul_and_cyrillic_are_drawn_in_a_font_that_has_them(settings: Settings) -> None:
    paths = settings.PDF_FONTS
    faces = fonts.installed(tuple(paths))
    if len(faces) < 2:
        pytest.skip("the fonts of PDF_FONTS are not installed (fonts-dejavu-core, fonts-noto-cjk)")
    coverage = [fonts.characters(path, index) for path, index in faces]
    for title in ("생포된 북한군 병사 두 명의 강제송환을 막아 주세요", "Захистіть двох полонених"):
        for n, run in fonts.runs(title, coverage):
            assert all(ord(c) in coverage[n] for c in run), (n, run)
    # On the card: without a Hangul font the title would be empty boxes, so the card drawn
    # with the configured fonts differs from one drawn with DejaVu alone, in the title's box.
    title = "생포된 북한군 병사"
    drawn = share_card.draw_card(title=title, count=5, goal=10, locale="ko", font_paths=paths)
    boxes = share_card.draw_card(title=title, count=5, goal=10, locale="ko", font_paths=[paths[0]])
    box = (share_card.MARGIN, share_card.TITLE_TOP, 1128, share_card.TITLE_BOTTOM)
    with Image.open(io.BytesIO(drawn)) as a, Image.open(io.BytesIO(boxes)) as b:
        assert ImageChops.difference(a.convert("RGB"), b.convert("RGB")).crop(box).getbbox()
        ink = a.convert("L").crop(box).point(lambda v: 255 if v < 128 else 0)
        assert ink.getbbox() is not None  # the title is drawn, in dark ink


def test_a_card_is_drawn_once_per_count_shown(
    client: TestClient, session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    petition = make_petition(session, goal=1000)
    session.commit()
    drawn: list[int] = []
    draw = share_card.draw_card

    def counting(**kwargs: Any) -> bytes:
        drawn.append(kwargs["count"])
        return draw(**kwargs)

    monkeypatch.setattr(share_card, "draw_card", counting)
    for _ in range(3):
        assert client.get(f"/petitions/{petition.slug}/card.png").status_code == 200
    assert drawn == [0]
    confirm_signers(session, settings, petition, 1)
    client.get(f"/petitions/{petition.slug}/card.png")
    assert drawn == [0, 1]
    tags = head_tags(client.get(f"/petitions/{petition.slug}").text)
    assert tags.one("og:image").endswith("card.png?lang=en&n=1")


def test_a_card_for_an_unknown_or_draft_petition_is_404(client: TestClient) -> None:
    assert client.get("/petitions/nothing-here/card.png").status_code == 404
    assert client.get("/petitions/nothing-here/badge.svg").status_code == 404


def test_without_fonts_the_card_says_what_to_install(
    settings: Settings, session: Session, engine: Any
) -> None:
    petition = make_petition(session)
    session.commit()
    no_fonts = settings.model_copy(update={"PDF_FONTS": ["/nonexistent/font.ttf"]})
    with TestClient(create_app(no_fonts)) as client:
        response = client.get(f"/petitions/{petition.slug}/card.png")
        assert response.status_code == 503
        assert response.json()["type"].endswith("/share-font-missing")
        # The badge estimates its widths instead.
        assert client.get(f"/petitions/{petition.slug}/badge.svg").status_code == 200


# --- the count badge ------------------------------------------------------------------------


def test_the_badge_is_an_svg_with_the_localised_count(
    client: TestClient, session: Session, settings: Settings
) -> None:
    petition = make_petition(session, locales=("uk", "en"))
    uk = {**petition.translations["uk"], "title": 'Петиція <script>alert("x")</script> & Co'}
    petition.translations = {**petition.translations, "uk": uk}
    session.add(petition)
    session.commit()
    confirm_signers(session, settings, petition, 1)
    response = client.get(f"/petitions/{petition.slug}/badge.svg?lang=uk")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml; charset=utf-8"
    assert response.headers["cache-control"].startswith("public")
    assert "<script>" not in response.text
    svg = ElementTree.fromstring(response.text)  # noqa: S314 (ours; well-formed XML)
    ns = {"svg": "http://www.w3.org/2000/svg"}
    texts = [t.text for t in svg.iterfind(".//svg:text", ns)]
    assert texts == ["петиція", "1 підпис"]
    title = svg.find("svg:title", ns)
    assert title is not None and title.text == 'Петиція <script>alert("x")</script> & Co: 1 підпис'
    assert svg.get("role") == "img"


def test_the_badge_writes_big_numbers_the_languages_way(
    client: TestClient, session: Session, settings: Settings
) -> None:
    petition = make_petition(session, locales=("en", "uk"))
    session.commit()
    assert petition.id is not None
    signature = Signature(
        petition_id=petition.id,
        name="Signer",
        email="s@example.org",
        email_normalised="s@example.org",
        country="UA",
        locale="uk",
        status=SignatureStatus.confirmed,
    )
    session.add(signature)
    session.flush()
    for _ in range(3):  # three tallied confirmations of one row stand for 12,345 of them
        signature_tally.add_to_tallies(
            session,
            signature=signature,
            confirmed_at=signature.created_at,
            settings=settings,
            delta=4115,
        )
    session.commit()
    assert (
        "12\u00a0345 підписів" in client.get(f"/petitions/{petition.slug}/badge.svg?lang=uk").text
    )
    assert "12,345 signatures" in client.get(f"/petitions/{petition.slug}/badge.svg?lang=en").text


def test_long_titles_wrap_within_the_card_and_are_never_cut_silently(settings: Settings) -> None:
    if not fonts.installed(tuple(settings.PDF_FONTS)):
        pytest.skip("the fonts of PDF_FONTS are not installed")
    typeface = share_card.Typeface.of(settings.PDF_FONTS)
    width = CARD_WIDTH - 2 * share_card.MARGIN
    title = "Захистіть двох полонених північнокорейських солдатів від примусового повернення"
    size, lines = share_card.title_layout(typeface, title)
    assert " ".join(lines) == title  # it fits: every word, in order
    assert all(typeface.width(line, size) <= width for line in lines)
    # A word wider than a line is broken inside; a title too long for the box ends in "…".
    size, lines = share_card.title_layout(typeface, "가" * 400)
    assert all(typeface.width(line, size) <= width for line in lines)
    assert lines[-1].endswith("…") and set("".join(lines)) == {"가", "…"}
