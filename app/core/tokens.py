"""Unguessable, single-purpose, expiring tokens for links in e-mails.

A token is `base64url(purpose-free payload) . base64url(HMAC-SHA256)`: the MAC is keyed with a
key derived from SECRET_KEY *and the purpose*, so a token made to confirm a signature cannot be
used for anything else. Nothing is stored, so a database leak reveals no usable link; a token
is single-use because the action it authorises (e.g. confirming) only happens once.

Each part has one spelling only: URL-safe base64 without padding, as make_token writes it. The
standard alphabet, `=` padding or other characters are refused rather than decoded leniently
(Python's decoder skips what it does not know), so a link cannot be varied and still verify.
New tokens are signed with SECRET_KEY; tokens signed with a key in SECRET_KEY_FALLBACKS still
verify, so rotating the key does not break the links already in people's inboxes.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import re
import time
from dataclasses import dataclass

from app.core.config import Settings
from app.core.errors import ProblemError


class TokenError(Exception):
    """The token is malformed, forged, for another purpose, or expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "invalid" or "expired"


@dataclass(frozen=True)
class TokenClaims:
    subject: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_CANONICAL = re.compile(r"[A-Za-z0-9_-]+")


def _unb64(text: str) -> bytes:
    """The bytes of a part written by _b64, or ValueError for any other spelling of them."""
    if not _CANONICAL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not canonical base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:  # unused low bits set: another spelling of the same bytes
        raise ValueError("not canonical base64url")
    return data


@functools.lru_cache(maxsize=64)
def _key(secret: str, purpose: str) -> bytes:
    """The purpose's key (kept: a worker makes two tokens per confirmation e-mail, and making
    the key each time was a third of a token's CPU). Few: secrets x purposes."""
    return hmac.digest(secret.encode(), b"chorus-token:" + purpose.encode(), "sha256")


def make_token(
    settings: Settings,
    *,
    purpose: str,
    subject: int,
    ttl_seconds: int = 0,
    expires_at: int | None = None,
) -> str:
    """A signed token for `subject`, valid `ttl_seconds` from now, or until `expires_at` (a
    Unix time: the same token every time it is made, e.g. for a link in a resent letter)."""
    if expires_at is None:
        expires_at = int(time.time()) + ttl_seconds
    # json.dumps([subject, expires_at], separators=(",", ":")) of two ints, without its encoder.
    payload = f"[{int(subject)},{int(expires_at)}]"
    body = _b64(payload.encode())
    key = _key(settings.SECRET_KEY.get_secret_value(), purpose)
    mac = hmac.digest(key, body.encode(), "sha256")
    return f"{body}.{_b64(mac)}"


def read_token(settings: Settings, token: str, *, purpose: str) -> TokenClaims:
    body, _, mac = token.partition(".")
    if not token.isascii() or not body or not mac or len(token) > 200:
        raise TokenError("invalid")
    try:
        given = _unb64(mac)
        subject, expires_at = json.loads(_unb64(body))
    except (ValueError, TypeError):
        raise TokenError("invalid") from None
    matched = False
    for secret in settings.signing_secrets:  # SECRET_KEY, then SECRET_KEY_FALLBACKS
        expected = hmac.digest(_key(secret, purpose), body.encode(), "sha256")
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise TokenError("invalid")
    if not isinstance(subject, int) or not isinstance(expires_at, int):
        raise TokenError("invalid")
    if expires_at < time.time():
        raise TokenError("expired")
    return TokenClaims(subject=subject, expires_at=expires_at)


def read_link(
    settings: Settings,
    token: str,
    *,
    purpose: str,
    link: str = "link",
    invalid_status: int = 400,
    renew: str | None = None,
) -> TokenClaims:
    """read_token for a link someone followed, failing with a problem they can act on: 410
    "This <link> has expired" (`renew` says how to get a new one), else `invalid_status`
    "This <link> is not valid"."""
    try:
        return read_token(settings, token, purpose=purpose)
    except TokenError as exc:
        if exc.reason == "expired":
            raise ProblemError(410, "token-expired", f"This {link} has expired", renew) from None
        raise ProblemError(invalid_status, "token-invalid", f"This {link} is not valid") from None
