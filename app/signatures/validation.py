"""Rules for what a supporter may submit when signing.

Errors carry a stable `type` (e.g. `name_formula`) that HTML forms translate, and an English
message that the API returns in problem details.
"""

from __future__ import annotations

import re
import unicodedata

import pycountry
from email_validator import EmailNotValidError, validate_email
from pydantic_core import PydanticCustomError

NAME_MAX = 100
POSTCODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 \-]{0,14}$")
# Characters a spreadsheet may read as the start of a formula, plus tab and carriage return.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
NAME_PUNCTUATION = set(" '’.-,")
COUNTRY_CODES = frozenset(c.alpha_2 for c in pycountry.countries)

# Providers that deliver `john+tag@` to `john@` (sub-addressing), and those that also ignore
# dots (`j.o.h.n@` is `john@`): signatures are compared with those removed. Elsewhere a `+` may
# be part of a real, different mailbox, so it is kept.
PLUS_IGNORED = {
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "fastmail.com",
    "proton.me",
    "protonmail.com",
    "pm.me",
    "yandex.ru",
    "yandex.com",
}
DOTS_IGNORED = {"gmail.com", "googlemail.com"}
DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}


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


def check_email(value: str) -> str:
    value = value.strip()
    if not value:
        raise PydanticCustomError("email_missing", "Enter your e-mail address")
    try:
        # No SMTPUTF8: every address must be deliverable by any mail server. An international
        # domain is kept in its ASCII (IDNA) form, which every server accepts.
        result = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise PydanticCustomError(
            "email_invalid", "Enter a valid e-mail address ({reason})", {"reason": str(exc)}
        ) from None
    return result.ascii_email or result.normalized


def check_country(value: str) -> str:
    code = value.strip().upper()
    if code not in COUNTRY_CODES:
        raise PydanticCustomError(
            "country_invalid", "Choose a country (an ISO 3166-1 alpha-2 code such as KR or UA)"
        )
    return code


def check_postcode(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip().upper()
    if not POSTCODE_RE.match(value):
        raise PydanticCustomError(
            "postcode_invalid", "A postcode is up to 15 letters, digits, spaces or hyphens"
        )
    return value


def normalise_email(email: str) -> str:
    """The key under which one person can sign a petition once.

    Case is ignored everywhere; a `+tag` and dots are dropped for the providers that ignore
    them (as the UK Parliament's e-petitions does for Gmail).
    """
    local, _, domain = email.strip().lower().rpartition("@")
    if domain in PLUS_IGNORED and "+" in local[1:]:
        local = local.split("+", 1)[0]
    domain = DOMAIN_ALIASES.get(domain, domain)
    if domain in DOTS_IGNORED:
        local = local.replace(".", "") or local
    return f"{local}@{domain}"
