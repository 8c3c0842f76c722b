"""Interface strings in the languages Chorus ships, and choosing a language for a request.

Catalogs are flat JSON files: `app/locales/<locale>.json`, plus one `<domain>.<locale>.json` per
domain that keeps its strings apart. English is complete and is the fallback for any key another
catalog lacks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

LOCALES_DIR = Path(__file__).resolve().parents[1] / "locales"
FALLBACK = "en"
SUPPORTED_LOCALES = ("en", "ko", "uk")
LANGUAGE_NAMES = {"en": "English", "ko": "한국어", "uk": "Українська"}


@cache
def catalog(locale: str) -> dict[str, str]:
    data: dict[str, str] = {}
    for path in sorted(LOCALES_DIR.glob(f"*{locale}.json")):
        if path.name == f"{locale}.json" or path.name.endswith(f".{locale}.json"):
            data.update(json.loads(path.read_text(encoding="utf-8")))
    return data


def translate(locale: str, key: str, **values: Any) -> str:
    text = catalog(locale).get(key) or catalog(FALLBACK).get(key) or key
    return text.format(**values) if values else text


def parse_accept_language(header: str | None) -> list[str]:
    """Language tags from an Accept-Language header, best first (`ko-KR` gives `ko`)."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        tag = tag.strip().lower().split("-")[0]
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(
    *, query: str | None, accept_language: str | None, available: Iterable[str], default: str
) -> str:
    """`?lang=` first, then Accept-Language, then the default, among the available locales."""
    options = list(available)
    if query:
        wanted = query.strip().lower().split("-")[0]
        if wanted in options:
            return wanted
    for tag in parse_accept_language(accept_language):
        if tag in options:
            return tag
    return default if default in options else (options[0] if options else FALLBACK)


def request_locale(
    request: Any, *, available: Iterable[str] = SUPPORTED_LOCALES, default: str = FALLBACK
) -> str:
    """The language for a page: its `?lang=`, then the browser's Accept-Language."""
    return negotiate(
        query=request.query_params.get("lang"),
        accept_language=request.headers.get("accept-language"),
        available=available,
        default=default,
    )


def country_names(locale: str) -> list[tuple[str, str]]:
    """(code, name) pairs for the country picker, names in `locale`, sorted by name."""
    return _country_names(locale)


@cache
def _country_names(locale: str) -> list[tuple[str, str]]:
    import gettext

    import pycountry

    try:
        trans: gettext.NullTranslations = gettext.translation(
            "iso3166-1", pycountry.LOCALES_DIR, languages=[locale]
        )
    except OSError:
        trans = gettext.NullTranslations()
    names = [
        (c.alpha_2, trans.gettext(getattr(c, "common_name", None) or c.name))
        for c in pycountry.countries
    ]
    return sorted(names, key=lambda item: item[1])
