"""Addresses: e-mail addresses checked and normalised, and the countries an address may be in.

Used by every domain that takes an address: signatures, letters, targets, donations, accounts,
suppressions, abuse rules.
"""

from __future__ import annotations

import pycountry
from email_validator import EmailNotValidError, validate_email
from pydantic_core import PydanticCustomError

COUNTRY_CODES = frozenset(c.alpha_2 for c in pycountry.countries)

# Providers that deliver `john+tag@` to `john@` (sub-addressing), and those that also ignore
# dots (`j.o.h.n@` is `john@`): addresses are compared with those removed. Elsewhere a `+` may
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


def check_email(value: str) -> str:
    """A deliverable-looking address as any mail server takes it (a validator for models)."""
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


def check_country(value: str) -> str:
    """An ISO 3166-1 alpha-2 country code, upper-cased (a validator for models)."""
    code = value.strip().upper()
    if code not in COUNTRY_CODES:
        raise PydanticCustomError(
            "country_invalid", "Choose a country (an ISO 3166-1 alpha-2 code such as KR or UA)"
        )
    return code
