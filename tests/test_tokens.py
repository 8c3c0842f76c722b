"""Signed links: one spelling verifies, and rotating SECRET_KEY keeps the links already sent."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import Session, select

from app.core.config import Settings
from app.core.tokens import TokenError, make_token, read_token
from app.main import create_app
from app.rights import service as rights_service
from app.signatures.models import Signature
from tests.factories import make_petition, signer

OLD_KEY = "the-old-secret-key-that-was-leaked-0123456789"
NEW_KEY = "the-new-secret-key-after-the-rotation-987654321"


def _token_with(settings: Settings, chars: str) -> str:
    """A valid token whose MAC has one of `chars` (subjects differ, so MACs do)."""
    for subject in range(1, 10_000):
        token = make_token(settings, purpose="test", subject=subject, ttl_seconds=3600)
        if any(c in token.partition(".")[2] for c in chars):
            return token
    raise AssertionError("no such token")


def test_only_the_canonical_spelling_of_a_token_verifies(settings: Settings) -> None:
    token = _token_with(settings, "-_")
    body, _, mac = token.partition(".")
    assert read_token(settings, token, purpose="test").subject > 0
    variants = [
        f"{token}==",  # padded
        f"{token}=",
        f"{body}==.{mac}",
        f"{body}.{mac.replace('-', '+').replace('_', '/')}",  # the standard alphabet
        f"{body}.{mac[:10]}!{mac[10:]}",  # a character base64 decoders skip
        f"{body}.{mac[:10]}\n{mac[10:]}",
    ]
    # The last character of a 32-byte MAC carries 2 unused bits: another letter there decodes
    # to the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(mac[-1])
    variants.append(f"{body}.{mac[:-1]}{alphabet[last ^ 1]}")
    for variant in variants:
        with pytest.raises(TokenError):
            read_token(settings, variant, purpose="test")


@pytest.fixture
def app_with() -> Iterator[Any]:
    clients: list[TestClient] = []

    def make(settings: Settings) -> TestClient:
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_links_signed_with_a_former_key_work_while_it_is_a_fallback(
    settings: Settings, session: Session, app_with: Any
) -> None:
    old = settings.model_copy(update={"SECRET_KEY": SecretStr(OLD_KEY)})
    petition = make_petition(session)
    session.commit()
    before = app_with(old)
    assert (
        before.post(f"/api/v1/petitions/{petition.slug}/signatures", json=signer()).status_code
        == 202
    )
    signature_id = session.exec(select(Signature)).one().id
    assert signature_id is not None
    link = f"/signatures/manage/{rights_service.manage_token(old, signature_id=signature_id)}"
    assert before.get(link).status_code == 200

    rotated = settings.model_copy(
        update={"SECRET_KEY": SecretStr(NEW_KEY), "SECRET_KEY_FALLBACKS": SecretStr(OLD_KEY)}
    )
    assert app_with(rotated).get(link).status_code == 200
    # New links are signed with the new key only.
    fresh = rights_service.manage_token(rotated, signature_id=signature_id)
    assert fresh != rights_service.manage_token(old, signature_id=signature_id)
    assert app_with(old).get(f"/signatures/manage/{fresh}").status_code == 400

    forgotten = settings.model_copy(update={"SECRET_KEY": SecretStr(NEW_KEY)})
    assert app_with(forgotten).get(link).status_code == 400


def test_fallbacks_are_read_comma_separated_and_checked_in_production() -> None:
    settings = Settings(
        _env_file=None,
        SECRET_KEY=NEW_KEY,
        SECRET_KEY_FALLBACKS=f" {OLD_KEY} ,, second-old-key-0123456789-0123456789 ",
    )
    assert settings.signing_secrets == [NEW_KEY, OLD_KEY, "second-old-key-0123456789-0123456789"]
    with pytest.raises(ValueError, match="SECRET_KEY_FALLBACKS"):
        Settings(
            _env_file=None,
            ENVIRONMENT="production",
            MAIL_SERVER="smtp.example.org",
            SECRET_KEY=NEW_KEY,
            SECRET_KEY_FALLBACKS="dev-secret-key-not-for-production",
        )


def test_a_token_is_spelled_as_links_already_sent_were() -> None:
    """The links in e-mails already sent keep verifying, and a link made again (a resent
    letter's, with the same expiry) is the same: the token is the base64url of the JSON
    [subject, expires_at] and the HMAC-SHA256 of it under a key made from SECRET_KEY and
    the purpose, whatever code writes it."""
    settings = Settings(SECRET_KEY=SecretStr(NEW_KEY))
    # What make_token gave before its key was kept and its JSON written by hand (2768fd5).
    expected = "WzQyLDE3OTk5OTk5OTld.0SfJmc_yi76akfFdg9LsqyR7mo0H3rgkvnbixS1rHtc"
    token = make_token(settings, purpose="confirm", subject=42, expires_at=1799999999)
    body = base64.urlsafe_b64encode(json.dumps([42, 1799999999]).replace(" ", "").encode())
    key = hmac.new(NEW_KEY.encode(), b"chorus-token:confirm", hashlib.sha256).digest()
    mac = hmac.new(key, body.rstrip(b"="), hashlib.sha256).digest()
    spelled = f"{body.rstrip(b'=').decode()}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert token == spelled == expected
    assert read_token(settings, token, purpose="confirm").subject == 42
