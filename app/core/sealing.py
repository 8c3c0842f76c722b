"""Secrets Chorus must keep readable, kept encrypted at rest with a key derived from SECRET_KEY.

A webhook endpoint's signing secret has to be read again at every delivery, so it cannot be
stored as a hash the way API tokens are. It is sealed with AES-256-GCM under a key derived
(HKDF-SHA256) from SECRET_KEY and the secret's purpose: a copy of the database alone reveals
no secret, and a value sealed for one purpose does not open for another. New values are sealed
with SECRET_KEY; values sealed with a key of SECRET_KEY_FALLBACKS still open, so rotating the
key (with the old one kept as a fallback) loses nothing.

A sealed value is `v1.` + URL-safe base64 of a 12-byte nonce and the ciphertext with its tag.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.core.config import Settings

_VERSION = "v1."
_NONCE_BYTES = 12


class Unsealable(Exception):
    """The value was sealed with a key Chorus no longer has (SECRET_KEY changed without the old
    key in SECRET_KEY_FALLBACKS), or it is not a sealed value."""


def _key(secret: str, purpose: str) -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"chorus-seal:" + purpose.encode()
    ).derive(secret.encode())
    return AESGCM(derived)


def seal(settings: Settings, plaintext: str, *, purpose: str) -> str:
    """`plaintext` encrypted with SECRET_KEY for `purpose`, as text to store."""
    nonce = os.urandom(_NONCE_BYTES)
    key = _key(settings.SECRET_KEY.get_secret_value(), purpose)
    sealed = nonce + key.encrypt(nonce, plaintext.encode(), purpose.encode())
    return _VERSION + base64.urlsafe_b64encode(sealed).decode("ascii")


def unseal(settings: Settings, sealed: str, *, purpose: str) -> str:
    """The plaintext of a value `seal` made for `purpose` with SECRET_KEY or a fallback key;
    Unsealable otherwise."""
    if not sealed.startswith(_VERSION):
        raise Unsealable("not a sealed value")
    try:
        raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :])
    except ValueError:
        raise Unsealable("not a sealed value") from None
    nonce, ciphertext = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
    for secret in settings.signing_secrets:  # SECRET_KEY, then SECRET_KEY_FALLBACKS
        try:
            return _key(secret, purpose).decrypt(nonce, ciphertext, purpose.encode()).decode()
        except InvalidTag:
            continue
    raise Unsealable("sealed with a key that is neither SECRET_KEY nor one of its fallbacks")
