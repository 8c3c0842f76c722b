"""Signing again tells nobody who has signed: not by the answer, and not by the time it takes.

Timing itself is too noisy to test; what made the difference (a SELECT, an UPDATE and an INSERT
that only a repeat signer's request ran) is asserted instead: a new and a repeat signer's
requests run exactly the same SQL statements and get byte-identical answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, update
from sqlmodel import Session, select

from app.email.models import OutboxMessage
from app.signatures.models import Signature, SignatureStatus
from tests.factories import make_petition, signer

_TIME = re.compile(r"'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00'")


@pytest.fixture
def statements(client: TestClient) -> Iterator[Callable[[Callable[[], Any]], list[str]]]:
    """statements(call) -> the SQL the app ran during call()."""
    engine = client.app.state.engine  # type: ignore[attr-defined]
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # (the abuse windows' times are written into their statement on PostgreSQL)
        seen.append(_TIME.sub("'<time>'", " ".join(statement.split())))

    event.listen(engine, "before_cursor_execute", record)

    def run(call: Callable[[], Any]) -> list[str]:
        seen.clear()
        call()
        return list(seen)

    yield run
    event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("path", ["api", "form"])
def test_a_repeat_signer_runs_the_same_statements_and_gets_the_same_answer(
    client: TestClient, session: Session, statements: Any, path: str
) -> None:
    petition = make_petition(session)
    session.commit()
    answers: list[Any] = []

    def sign(email: str) -> Callable[[], Any]:
        data = signer(email=email, name="Mina Kim", country="KR")

        def call() -> None:
            if path == "api":
                response = client.post(f"/api/v1/petitions/{petition.slug}/signatures", json=data)
            else:
                response = client.post(
                    f"/petitions/{petition.slug}/sign", data=data, follow_redirects=False
                )
            answers.append(response)

        return call

    first = statements(sign("first@example.org"))
    statements(sign("pending@example.org"))
    pending_again = statements(sign("pending@example.org"))
    statements(sign("confirmed@example.org"))
    statements(sign("withdrawn@example.org"))
    for email, status in [
        ("confirmed@example.org", SignatureStatus.confirmed),
        ("withdrawn@example.org", SignatureStatus.withdrawn),
    ]:
        session.execute(
            update(Signature).where(Signature.email == email).values(status=status)  # type: ignore[arg-type]
        )
    session.commit()
    confirmed_again = statements(sign("confirmed@example.org"))
    withdrawn_again = statements(sign("withdrawn@example.org"))

    assert first == pending_again == confirmed_again == withdrawn_again
    shapes = {(r.status_code, r.headers.get("location"), r.content) for r in answers}
    assert len(shapes) == 1, shapes
    headers = {
        tuple(sorted((k, v) for k, v in r.headers.items() if k != "x-request-id")) for r in answers
    }
    assert len(headers) == 1
    # And each got its e-mail: a second confirmation, an "already signed" notice (also for a
    # withdrawn signature: it keeps its row and does not count again).
    kinds = sorted(
        (m.recipient, m.kind, str(m.dedup_key).rsplit(":", 1)[-1])
        for m in session.exec(select(OutboxMessage)).all()
        if m.recipient != "first@example.org"
    )
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    assert kinds == [
        ("confirmed@example.org", "signature_already_signed", day),
        ("confirmed@example.org", "signature_confirmation", "1"),
        ("pending@example.org", "signature_confirmation", "1"),
        ("pending@example.org", "signature_confirmation", "2"),
        ("withdrawn@example.org", "signature_already_signed", day),
        ("withdrawn@example.org", "signature_confirmation", "1"),
    ]
