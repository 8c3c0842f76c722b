"""What a petition page says to link previews, and the links that share it.

Every address is absolute, built from PUBLIC_BASE_URL (never from the request's Host header),
and names the page's language (`?lang=`), so a preview and a shared link open the petition in
the language it was shared in. Share links are plain links: they work without JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from babel.core import get_global

from app.core.config import Settings
from app.core.i18n import babel_locale, translate
from app.petitions.models import Petition

CARD_WIDTH, CARD_HEIGHT = 1200, 630


@dataclass(frozen=True)
class ShareLink:
    network: str  # email, x, facebook, telegram, kakaotalk
    href: str
    new_window: bool  # a web page of another site, not an app or the mail program


@dataclass(frozen=True)
class Share:
    """A petition in one language, as it is shared and previewed."""

    url: str  # the page in this language: canonical, og:url, what every share link carries
    title: str
    summary: str
    image: str  # the share card (PNG), og:image and twitter:image
    image_alt: str
    image_width: int
    image_height: int
    og_locale: str  # en_GB, ko_KR, uk_UA
    og_alternate_locales: list[str]
    alternates: list[tuple[str, str]]  # (hreflang, address), each language and x-default
    links: list[ShareLink]


def count_shown(count: int) -> tuple[int, bool]:
    """The count a share card shows, and whether it is exact: exact below 100, else rounded
    down to two significant digits (12,345 shows as "more than 12,000"). A card is rendered
    once per petition, language and shown count, so a surge renders a handful, not one per
    signature; and what it says stays true as the count grows."""
    if count < 100:
        return count, True
    step = 10 ** (len(str(count)) - 2)
    shown = count // step * step
    return shown, shown == count


def og_locale(locale: str) -> str:
    """OpenGraph's language_TERRITORY form: en_GB (as Chorus writes English), ko_KR, uk_UA."""
    cldr = babel_locale(locale)
    if cldr.territory:
        return f"{cldr.language}_{cldr.territory}"
    likely: str = get_global("likely_subtags").get(cldr.language, cldr.language)
    parts = likely.split("_")
    return f"{parts[0]}_{parts[-1]}" if len(parts) > 1 else parts[0]


def page_url(settings: Settings, petition: Petition, locale: str) -> str:
    return settings.public_url(f"/petitions/{petition.slug}?lang={locale}")


def card_url(settings: Settings, petition: Petition, locale: str, count: int) -> str:
    """The share card's address. It names the count shown, so that a link shared after the
    count moved on gets a new preview rather than a platform's cached old one."""
    shown, _ = count_shown(count)
    query = urlencode({"lang": locale, "n": shown})
    return settings.public_url(f"/petitions/{petition.slug}/card.png?{query}")


def _links(url: str, title: str, summary: str, locale: str) -> list[ShareLink]:
    mail_body = translate(locale, "share.email_body", summary=summary, url=url)
    text = f"{title} {url}"
    return [
        # RFC 6068: every reserved character percent-encoded, line breaks as CRLF.
        ShareLink(
            "email",
            f"mailto:?subject={quote(title, safe='')}"
            f"&body={quote(mail_body.replace(chr(10), chr(13) + chr(10)), safe='')}",
            new_window=False,
        ),
        ShareLink(
            "x",
            "https://x.com/intent/tweet?" + urlencode({"text": title, "url": url}),
            new_window=True,
        ),
        ShareLink(
            "facebook",
            "https://www.facebook.com/sharer/sharer.php?" + urlencode({"u": url}),
            new_window=True,
        ),
        ShareLink(
            "telegram",
            "https://t.me/share/url?" + urlencode({"url": url, "text": title}),
            new_window=True,
        ),
        # KakaoTalk's own web sharing needs its JavaScript SDK and an app key (a script from
        # another site, which the pages' policy refuses). Without script, Android's share
        # intent hands the text to the KakaoTalk app; elsewhere people paste the copied link.
        ShareLink(
            "kakaotalk",
            "intent:#Intent;action=android.intent.action.SEND;type=text/plain;"
            f"S.android.intent.extra.TEXT={quote(text, safe='')};package=com.kakao.talk;end",
            new_window=False,
        ),
    ]


def petition_share(settings: Settings, petition: Petition, locale: str, count: int) -> Share:
    """How the petition is shared and previewed in `locale` (one of its languages)."""
    text = petition.text(locale)
    url = page_url(settings, petition, locale)
    alternates = [(code, page_url(settings, petition, code)) for code in petition.locales]
    # A reader with none of its languages gets the page negotiated from Accept-Language.
    alternates.append(("x-default", settings.public_url(f"/petitions/{petition.slug}")))
    return Share(
        url=url,
        title=text["title"],
        summary=text["summary"],
        image=card_url(settings, petition, locale, count),
        image_alt=translate(locale, "share.card_alt", title=text["title"]),
        image_width=CARD_WIDTH,
        image_height=CARD_HEIGHT,
        og_locale=og_locale(locale),
        og_alternate_locales=[og_locale(code) for code in petition.locales if code != locale],
        alternates=alternates,
        links=_links(url, text["title"], text["summary"], locale),
    )
