"""The signing API's fast path (app/signatures/fastpath.py) answers as the route would."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.petitions.models import PetitionStatus
from app.signatures import fastpath
from app.signatures.models import Signature
from tests.factories import make_petition, signer


def answer(
    client: TestClient, slug: str, body: dict[str, object]
) -> tuple[int, dict[str, str], bytes]:
    response = client.post(f"/api/v1/petitions/{slug}/signatures", json=body)
    headers = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "date")}
    return response.status_code, headers, response.content


def test_the_fast_path_and_the_route_give_the_same_answers(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_ = make_petition(session)
    closed = make_petition(session, status=PetitionStatus.closed)

    def answers(tag: str) -> list[tuple[int, dict[str, str], bytes]]:
        return [
            answer(client, open_.slug, signer(email=f"{tag}-new@example.org")),
            answer(client, open_.slug, signer(email=f"{tag}-new@example.org")),  # again
            answer(client, closed.slug, signer(email=f"{tag}-late@example.org")),
            answer(client, "no-such-petition", signer(email=f"{tag}-lost@example.org")),
        ]

    fast = answers("fast")
    monkeypatch.setattr(fastpath, "SIGN_PATH", re.compile("(?!)"))  # never: every one routed
    routed = answers("routed")
    assert [status for status, _, _ in fast] == [202, 202, 409, 404]
    assert fast == routed
    # The security headers every answer carries, on the fast path's too.
    assert fast[0][1]["content-security-policy"] and fast[0][1]["x-frame-options"] == "DENY"
    assert fast[2][1]["content-type"] == "application/problem+json"
    emails = set(session.exec(select(Signature.email)).all())
    assert emails == {"fast-new@example.org", "routed-new@example.org"}
