"""Which addresses count as one source: an IPv6 /64, an IPv4 address, a mapped IPv4 address;
and sources keep their counts and block rules when SECRET_KEY is rotated."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import Session, col, select

from app.abuse.models import AbuseRule, RuleAction, RuleKind
from app.core import cache
from app.core.clientip import ip_hash, source_network
from app.core.config import Settings
from app.main import create_app
from app.signatures.models import Signature
from tests.factories import make_petition, signer

OLD_KEY = "the-old-secret-key-that-was-leaked-0123456789"
NEW_KEY = "the-new-secret-key-after-the-rotation-987654321"


@pytest.fixture
def from_ip(settings: Settings, engine: Any) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(ip: str, **overrides: Any) -> TestClient:
        client = TestClient(create_app(settings.model_copy(update=overrides)), client=(ip, 5000))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
    cache.clear()  # the abuse rules are cached per process


def statuses(session: Session) -> list[str]:
    return [s.status for s in session.exec(select(Signature).order_by(col(Signature.id))).all()]


def test_source_networks() -> None:
    assert source_network("203.0.113.7") == "203.0.113.7"
    assert source_network("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert source_network("2001:DB8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert source_network("::ffff:203.0.113.7") == "203.0.113.7"
    assert source_network("testclient") == "testclient"


def test_addresses_of_one_ipv6_64_share_the_per_ip_limit(
    from_ip: Callable[..., TestClient], session: Session
) -> None:
    petition = make_petition(session)
    session.commit()
    limits = {"RATE_LIMIT_IP_PER_MINUTE": 10, "RATE_LIMIT_IP_PER_HOUR": 50}
    answers = [
        from_ip(f"2001:db8:7:8:{i:x}:{i * 7:x}::{i + 1:x}", **limits)
        .post(f"/api/v1/petitions/{petition.slug}/signatures", json=signer())
        .status_code
        for i in range(20)
    ]
    assert answers == [202] * 20
    assert statuses(session) == ["pending"] * 10 + ["suspect"] * 10
    rows = session.exec(select(Signature)).all()
    assert len({r.ip_hash for r in rows}) == 1
    # The next /64 is someone else; an IPv4-mapped address is its IPv4 address.
    other = from_ip("2001:db8:7:9::1", **limits)
    other.post(f"/api/v1/petitions/{petition.slug}/signatures", json=signer())
    assert statuses(session)[-1] == "pending"
    settings = other.app.state.settings  # type: ignore[attr-defined]
    assert ip_hash(settings, "::ffff:198.51.100.4") == ip_hash(settings, "198.51.100.4")


def test_a_block_rule_on_an_ipv6_address_holds_its_whole_64(
    from_ip: Callable[..., TestClient], session: Session, admin: Any
) -> None:
    petition = make_petition(session)
    session.commit()
    client = from_ip("2001:db8:5:5::99")
    rule = {"kind": "ip", "value": "2001:db8:5:5::1", "action": "block"}
    assert client.post("/api/v1/admin/abuse/rules", json=rule, headers=admin.headers).is_success
    client.post(f"/api/v1/petitions/{petition.slug}/signatures", json=signer())
    assert statuses(session) == ["suspect"]


def test_a_rotated_key_keeps_counts_and_block_rules(
    from_ip: Callable[..., TestClient], session: Session, settings: Settings
) -> None:
    petition = make_petition(session)
    session.commit()
    old = {"SECRET_KEY": SecretStr(OLD_KEY), "RATE_LIMIT_IP_PER_HOUR": 3}
    for _ in range(2):
        from_ip("203.0.113.7", **old).post(
            f"/api/v1/petitions/{petition.slug}/signatures", json=signer()
        )
    old_settings = settings.model_copy(update={"SECRET_KEY": SecretStr(OLD_KEY)})
    session.add(
        AbuseRule(
            kind=RuleKind.ip,
            value=ip_hash(old_settings, "198.51.100.66"),
            action=RuleAction.block,
        )
    )
    session.commit()
    rotated = {**old, "SECRET_KEY": SecretStr(NEW_KEY), "SECRET_KEY_FALLBACKS": SecretStr(OLD_KEY)}
    for _ in range(2):  # the third and fourth of the hour: the fourth is over the limit
        from_ip("203.0.113.7", **rotated).post(
            f"/api/v1/petitions/{petition.slug}/signatures", json=signer()
        )
    from_ip("198.51.100.66", **rotated).post(
        f"/api/v1/petitions/{petition.slug}/signatures", json=signer()
    )
    assert statuses(session) == ["pending"] * 3 + ["suspect"] * 2
    rows = session.exec(select(Signature).order_by(col(Signature.id))).all()
    assert rows[-1].held_reason == "blocked"
    # New signatures are stored under the new key's hash.
    new_settings = settings.model_copy(update={"SECRET_KEY": SecretStr(NEW_KEY)})
    assert rows[2].ip_hash == ip_hash(new_settings, "203.0.113.7") != rows[0].ip_hash
