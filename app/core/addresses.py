"""Addresses: e-mail addresses checked and normalised, and the countries an address may be in.

Used by every domain that takes an address: signatures, letters, targets, donations, accounts,
suppressions, abuse rules.
"""

from __future__ import annotations

import functools

import pycountry
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import (
    CASE_INSENSITIVE_MAILBOX_NAMES,
    DOT_ATOM_TEXT,
    EMAIL_MAX_LENGTH,
    LOCAL_PART_MAX_LENGTH,
)
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
    """A deliverable-looking address as any mail server takes it (a validator for models).

    The same answer as email_validator's for the whole address, sooner for the usual one: a
    plain ASCII part before the @ (a dot-atom) at a domain already found valid (_domain). A
    domain's checks (IDNA, character by character) were most of what validating an address
    cost, and a surge's signers are at a few hundred domains. Anything else is validated whole.
    """
    value = value.strip()
    if not value:
        raise PydanticCustomError("email_missing", "Enter your e-mail address")
    local, _, domain = value.partition("@")
    if (
        len(local) <= LOCAL_PART_MAX_LENGTH
        and DOT_ATOM_TEXT.match(local)
        and local.lower() not in CASE_INSENSITIVE_MAILBOX_NAMES  # (lower-cased when whole)
        and not _STRUCTURAL.intersection(domain)
    ):
        known = _domain(domain)
        if known is not None and all(
            len(f"{local}@{form}".encode()) <= EMAIL_MAX_LENGTH for form in (domain, *known)
        ):
            return f"{local}@{known[1]}"
    return _check_whole(value)


def _check_whole(value: str) -> str:
    """check_email by email_validator alone, for a stripped, non-empty value."""
    try:
        # No SMTPUTF8: every address must be deliverable by any mail server. An international
        # domain is kept in its ASCII (IDNA) form, which every server accepts.
        result = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise PydanticCustomError(
            "email_invalid", "Enter a valid e-mail address ({reason})", {"reason": str(exc)}
        ) from None
    return result.ascii_email or result.normalized


# What a domain cannot hold but an address's other forms can (a display name, a quoted or
# bracketed part, a second @): such an input is validated whole.
_STRUCTURAL = frozenset(' \t<>()[]\\,;:"@')


@functools.lru_cache(maxsize=4096)
def _domain(domain: str) -> tuple[str, str] | None:
    """The domain's forms (internationalised, ASCII) as email_validator gives them back for
    an address there, or None when it does not take one."""
    try:
        result = validate_email(f"a@{domain}", check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return result.domain, result.ascii_domain


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
