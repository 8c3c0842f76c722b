"""Interface strings in the languages Chorus ships, and choosing a language for a request.

Catalogs are flat JSON files: `app/locales/<locale>.json`, plus one `<domain>.<locale>.json` per
domain that keeps its strings apart. English is complete and is the fallback for any key another
catalog lacks.

A string that counts something has one form per CLDR plural category its language uses
(`{"one": "{count} signature", "other": "{count} signatures"}`; Ukrainian adds `few` and
`many`, Korean has only `other`): `translate` picks the form for `count` by Babel's plural
rules. Every number given to `translate` is written the locale's way (Babel: `100,000`,
`100 000` with a no-break space in Ukrainian), and so are amounts and dates through `money`,
`long_date` and `date_time` below.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pycountry
from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal

LOCALES_DIR = Path(__file__).resolve().parents[1] / "locales"
FALLBACK = "en"
SUPPORTED_LOCALES = ("en", "ko", "uk")
LANGUAGE_NAMES = {"en": "English", "ko": "한국어", "uk": "Українська"}
# The CLDR locale each language is formatted as: the interface writes British English
# ("organiser", "cancelled"), so its dates read "30 November 2026", not "November 30, 2026".
FORMAT_LOCALES = {"en": "en_GB"}
# A catalog may give its alphabet (`locale.alphabet`) where code point order is not the
# alphabet's (Ukrainian: Є, І, Ї and Ґ are outside А-Я); see `sort_key`.
ALPHABET_KEY = "locale.alphabet"

Entry = str | dict[str, str]


@cache
def catalog(locale: str) -> dict[str, Entry]:
    data: dict[str, Entry] = {}
    for path in sorted(LOCALES_DIR.glob(f"*{locale}.json")):
        if path.name == f"{locale}.json" or path.name.endswith(f".{locale}.json"):
            data.update(json.loads(path.read_text(encoding="utf-8")))
    return data


@cache
def babel_locale(locale: str) -> Locale:
    """The Babel locale that formats, pluralises and names things for `locale` (`en`, `ko-KR`)."""
    base = locale.replace("-", "_").split("_")[0].lower() or FALLBACK
    try:
        return Locale.parse(FORMAT_LOCALES.get(base, base))
    except (ValueError, LookupError):
        return Locale.parse(FORMAT_LOCALES[FALLBACK])


def is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def number(value: Any, locale: str) -> str:
    """A number as `locale` writes it: 100,000 / 100 000 (uk, no-break space) / 1,5 (uk);
    anything else as it is."""
    return format_decimal(value, locale=babel_locale(locale)) if is_number(value) else str(value)


def money(minor: int, currency: str, locale: str, *, exponent: int) -> str:
    """An amount in minor units, as `locale` writes it: €25.00, ₩10,000, 500,00 ₴ (uk)."""
    major = Decimal(minor).scaleb(-exponent)
    return format_currency(major, currency, locale=babel_locale(locale))


def long_date(day: date | datetime, locale: str) -> str:
    """30 November 2026, 2026년 11월 30일, 30 листопада 2026 р."""
    return format_date(day, format="long", locale=babel_locale(locale))


def date_time(moment: datetime, locale: str) -> str:
    """A moment in UTC, to the minute, as `locale` writes it: 30 November 2026, 19:05 UTC,
    2026년 11월 30일 오후 7:05 UTC."""
    cldr = babel_locale(locale)
    # The locale's own long date and short time, joined its way (Babel's named formats use
    # one length for both, and "long" times have seconds).
    pattern = (
        str(cldr.datetime_formats["medium"])
        .replace("{1}", cldr.date_formats["long"].pattern)
        .replace("{0}", cldr.time_formats["short"].pattern + " z")
    )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_datetime(moment, pattern, tzinfo=UTC, locale=cldr)


def plural_category(locale: str, count: Any) -> str:
    """CLDR plural category of `count` in `locale`: one/few/many/other (uk), other (ko)."""
    return babel_locale(locale).plural_form(count) if is_number(count) else "other"


def translate(locale: str, key: str, **values: Any) -> str:
    """The string `key` in `locale` (else English, else the key), its `{placeholders}` filled.

    Numbers are written the locale's way; a plural entry takes the form for `count`.
    """
    source = locale if key in catalog(locale) else FALLBACK
    entry: Entry = catalog(source).get(key) or key
    if isinstance(entry, dict):
        # The catalog that has the forms decides which category applies.
        category = plural_category(source, values.get("count"))
        entry = entry.get(category) or entry["other"]
    if not values:
        return entry
    shown = {name: number(v, locale) if is_number(v) else v for name, v in values.items()}
    return entry.format(**shown)


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
    """(code, name) pairs for the country picker, names in `locale`, in its alphabetical order."""
    return _country_names(locale)


def country_name(code: str, locale: str) -> str:
    """A country's name in `locale` (its code when it has none); `pt-BR` names it as `pt`."""
    return _country_lookup(locale.split("-")[0]).get(code, code)


@cache
def _country_names(locale: str) -> list[tuple[str, str]]:
    # CLDR's names (Babel): "South Korea", not ISO's "Korea, Republic of"; only ISO 3166-1
    # countries, which is what a signature's country may be.
    territories = babel_locale(locale).territories
    english = babel_locale(FALLBACK).territories
    names = [
        (c.alpha_2, territories.get(c.alpha_2) or english.get(c.alpha_2) or c.name)
        for c in pycountry.countries
    ]
    return sorted(names, key=lambda item: sort_key(item[1], locale))


@cache
def _country_lookup(locale: str) -> dict[str, str]:
    return dict(_country_names(locale))


@cache
def _alphabet(locale: str) -> dict[str, int]:
    """Letter -> place, for a catalog that gives its alphabet."""
    letters = catalog(locale).get(ALPHABET_KEY)
    return {letter: i for i, letter in enumerate(letters)} if isinstance(letters, str) else {}


def sort_key(text: str, locale: str) -> tuple[Any, ...]:
    """A key that sorts words as a dictionary in `locale` does, without a collation library.

    Three levels, as in the Unicode Collation Algorithm: first the letters alone (case and
    accents ignored, so "Åland" sorts as "Aland", next to "Albania"), then the accents, then the
    case. A letter of the locale's alphabet (`locale.alphabet` in its catalog) takes its place
    there as a whole, even when Unicode writes it as a letter and a mark (Ukrainian Й, Ї).
    Letters of other scripts follow code point order, which suits Hangul. Spaces and
    punctuation sort before digits, digits before letters.
    """
    alphabet = _alphabet(locale.split("-")[0])
    primary: list[tuple[int, int]] = []
    accents: list[int] = []
    cases: list[int] = []
    for char in unicodedata.normalize("NFC", text):
        lower = char.lower()
        if lower in alphabet:
            primary.append((2, alphabet[lower]))
            accents.append(0)
        else:
            decomposed = unicodedata.normalize("NFD", lower)
            base = "".join(c for c in decomposed if not unicodedata.combining(c)) or lower
            marks = [ord(c) for c in decomposed if unicodedata.combining(c)]
            for b in base:
                kind = unicodedata.category(b)
                # (Modifier letters such as the Ukrainian apostrophe ʼ sort as punctuation.)
                group = 1 if kind[0] == "N" else 2 if kind[0] == "L" and kind != "Lm" else 0
                # Letters of the locale's alphabet come first, other scripts after them.
                primary.append((group, ord(b) + (len(alphabet) if alphabet else 0)))
            accents.append(sum(marks))
        cases.append(0 if char == lower else 1)
    return tuple(primary), tuple(accents), tuple(cases), text


def error_message(locale: str, type_: str, fallback: str) -> str:
    """What a form shows beside a field for an error of `type_`: `errors.<type_>` in `locale`,
    or `fallback` (the error's own English message) when the catalogue has no such entry."""
    key = f"errors.{type_}"
    message = translate(locale, key)
    return message if message != key else fallback
