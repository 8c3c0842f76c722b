"""Reading the console's HTML forms into the API's own models, so one set of rules applies."""

from __future__ import annotations

from typing import Annotated, Any

from babel.numbers import NumberFormatError, parse_decimal
from fastapi import Depends, Request

from app.core.i18n import SUPPORTED_LOCALES

MAX_FIELD = 25_000  # longer than any text the models accept, so their message is the one shown


async def form_fields(request: Request) -> dict[str, str]:
    """Every text field of the posted form (the last value of a repeated name), with the line
    breaks browsers send (CRLF) made the newlines stored texts use."""
    form = await request.form()
    return {k: v[:MAX_FIELD].replace("\r\n", "\n") for k, v in form.items() if isinstance(v, str)}


FormFields = Annotated[dict[str, str], Depends(form_fields)]


async def form_lists(request: Request) -> dict[str, list[str]]:
    """Every value of each text field of the posted form (checkboxes sharing a name)."""
    form = await request.form()
    out: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            out.setdefault(key, []).append(value[:MAX_FIELD])
    return out


FormLists = Annotated[dict[str, list[str]], Depends(form_lists)]


def number(value: str, locale: str) -> Any:
    """A whole number as the reader writes it (`100,000`, `100 000`); anything else is passed
    on as typed, for the model to refuse with its own message."""
    text = value.strip()
    try:
        parsed = parse_decimal(text, locale=locale)
    except NumberFormatError:
        return text
    return int(parsed) if parsed == parsed.to_integral_value() else text


def translations(
    fields: dict[str, str], names: tuple[str, ...], *, existing: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The `translations.<locale>.<name>` fields of a form: a language with every field empty
    is left out, unless it exists already (then emptying it is an error the model reports);
    `remove.<locale>` removes an existing one (null, as in the API)."""
    out: dict[str, Any] = {}
    for locale in SUPPORTED_LOCALES:
        text = {name: fields.get(f"translations.{locale}.{name}", "") for name in names}
        known = existing is not None and locale in existing
        if known and fields.get(f"remove.{locale}"):
            out[locale] = None
        elif known or any(value.strip() for value in text.values()):
            out[locale] = text
    return out


def locales_in_order(default: str, existing: dict[str, Any]) -> list[str]:
    """The default language first, then the others it has, then those it could have."""
    rest = [loc for loc in SUPPORTED_LOCALES if loc != default]
    return [
        default,
        *[loc for loc in rest if loc in existing],
        *[loc for loc in rest if loc not in existing],
    ]
