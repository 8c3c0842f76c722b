"""Password hashing (argon2id) and bearer tokens (random, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so a login takes as long either way: a hash of
# "chorus-no-such-user" with _hasher's parameters (a test checks they still match), written
# out rather than computed at import, which made 64 MiB (argon2's memory cost) the floor of
# every Chorus process's peak memory, `chorus export` and `chorus --help` included.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$3Ga9ASMklviL3dE84IVLSA"
    "$VFAPn7EFc5t2lXs4yAKLDUb4lmjlka482wRqI41xXdA"
)
TOKEN_PREFIX = "chorus_"  # noqa: S105 (a visible prefix, not a secret)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    # Tokens are 256 random bits: a fast hash is enough (unlike passwords).
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
