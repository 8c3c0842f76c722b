"""Rules for what a supporter may submit when signing.

Errors carry a stable `type` (e.g. `name_formula`) that HTML forms translate, and an English
message that the API returns in problem details.
"""

from __future__ import annotations

import re
import unicodedata

from pydantic_core import PydanticCustomError

from app.core.spreadsheet import FORMULA_PREFIXES

NAME_MAX = 100
POSTCODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 \-]{0,14}$")
NAME_PUNCTUATION = set(" '’.-,")


def check_name(value: str) -> str:
    # Checked before stripping: a leading tab or CR is refused, not silently removed.
    value = unicodedata.normalize("NFC", value.lstrip(" "))
    if value.startswith(FORMULA_PREFIXES):
        raise PydanticCustomError(
            "name_formula", "A name may not start with =, +, -, @, a tab or a carriage return"
        )
    value = value.strip()
    if not value:
        raise PydanticCustomError("name_missing", "Enter your name")
    if len(value) > NAME_MAX:
        raise PydanticCustomError("name_too_long", "A name may be at most 100 characters long")
    for char in value:
        category = unicodedata.category(char)
        if not (category[0] in "LM" or char in NAME_PUNCTUATION):
            raise PydanticCustomError(
                "name_characters",
                "A name may contain letters, spaces, apostrophes, hyphens, dots and commas only",
            )
    if not unicodedata.category(value[0]).startswith("L"):
        raise PydanticCustomError("name_characters", "A name must start with a letter")
    return re.sub(r"\s+", " ", value)


def check_postcode(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip().upper()
    if not POSTCODE_RE.match(value):
        raise PydanticCustomError(
            "postcode_invalid", "A postcode is up to 15 letters, digits, spaces or hyphens"
        )
    return value
