"""The rate-limit windows of a whole signing batch are read in one statement, and still hold."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlmodel import Session, col, select

from app.abuse.service import SigningSource
from app.core.config import Settings
from app.petitions.models import Petition
from app.signatures import service as signature_service
from app.signatures.models import Signature, SignatureCreate
from tests.factories import make_petition


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the application's engine runs meanwhile."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    yield seen
    event.remove(engine, "before_cursor_execute", count)


def sign_batch(
    engine: Engine, settings: Settings, petition: Petition, signers: list[tuple[str, str]]
) -> None:
    """Record one batch of (e-mail, ip) signatures in one transaction, as the batcher does."""
    requests = [
        signature_service.SignRequest(
            petition,
            SignatureCreate(name="Batch Signer", email=email, country="KR"),
            "en",
            SigningSource(ip=ip),
        )
        for email, ip in signers
    ]
    with Session(engine) as session:
        signature_service.sign_many(session, requests, settings=settings)
        session.commit()


def test_a_batch_of_distinct_sources_costs_the_same_statements_as_a_small_one(
    engine: Engine, settings: Settings, session: Session, statements: list[str]
) -> None:
    petition = make_petition(session)
    limited = settings.model_copy(update={"RATE_LIMIT_IP_PER_MINUTE": 10})

    def batch(size: int, start: int) -> list[tuple[str, str]]:
        # Every signer from their own address and their own small domain (neither exempt).
        return [
            (f"signer{start + i}@lab{start + i}.example.org", f"198.51.{start // 250}.{i}")
            for i in range(size)
        ]

    sign_batch(engine, limited, petition, batch(3, 0))  # warm-up (caches, first connection)
    statements.clear()
    sign_batch(engine, limited, petition, batch(3, 1000))
    small = len(statements)
    statements.clear()
    sign_batch(engine, limited, petition, batch(60, 2000))
    assert len(statements) == small, statements
    stored = session.exec(select(Signature)).all()
    assert len(stored) == 66 and {s.status for s in stored} == {"pending"}


def test_limits_hold_within_a_batch_and_across_batches(
    engine: Engine, settings: Settings, session: Session
) -> None:
    petition = make_petition(session)
    limited = settings.model_copy(
        update={
            "RATE_LIMIT_IP_PER_MINUTE": 3,
            "RATE_LIMIT_IP_PER_HOUR": 5,
            "RATE_LIMIT_DOMAIN_PER_MINUTE": 4,
        }
    )
    # Earlier: two from the busy address, three from the busy domain.
    sign_batch(
        engine,
        limited,
        petition,
        [
            ("a1@gmail.com", "203.0.113.1"),
            ("a2@gmail.com", "203.0.113.1"),
            ("d1@busy.example.org", "192.0.2.1"),
            ("d2@busy.example.org", "192.0.2.2"),
            ("d3@busy.example.org", "192.0.2.3"),
        ],
    )
    # Now one batch mixing the busy address, the busy domain and newcomers.
    sign_batch(
        engine,
        limited,
        petition,
        [
            ("a3@gmail.com", "203.0.113.1"),  # the address's 3rd this minute: still fine
            ("d4@busy.example.org", "192.0.2.4"),  # the domain's 4th: fine
            ("new1@naver.com", "198.51.100.1"),
            ("a4@gmail.com", "203.0.113.1"),  # 4th this minute: held
            ("d5@busy.example.org", "192.0.2.5"),  # 5th: held
            ("new2@ukr.net", "198.51.100.2"),
            ("new3@gmail.com", "198.51.100.1"),  # a household: 2nd from this address, fine
        ],
    )
    rows = session.exec(select(Signature).order_by(col(Signature.id))).all()
    assert [(r.email, r.held_reason) for r in rows[5:]] == [
        ("a3@gmail.com", None),
        ("d4@busy.example.org", None),
        ("new1@naver.com", None),
        ("a4@gmail.com", "rate-ip"),
        ("d5@busy.example.org", "rate-domain"),
        ("new2@ukr.net", None),
        ("new3@gmail.com", None),
    ]
    # The hourly limit (5) counts the held one too: with a fresh minute's allowance, the
    # address's 5th signature this hour is fine and its 6th is held.
    later = limited.model_copy(update={"RATE_LIMIT_IP_PER_MINUTE": 100})
    sign_batch(
        engine, later, petition, [("a5@gmail.com", "203.0.113.1"), ("a6@gmail.com", "203.0.113.1")]
    )
    rows = session.exec(select(Signature).order_by(col(Signature.id))).all()
    assert [(r.email, r.held_reason) for r in rows[12:]] == [
        ("a5@gmail.com", None),
        ("a6@gmail.com", "rate-ip"),
    ]


def test_the_window_counts_are_never_planned_with_a_prepared_statement_s_generic_plan(
    engine: Engine, settings: Settings, session: Session
) -> None:
    """psycopg prepares a statement run five times, and PostgreSQL may then keep a generic
    plan: one made while the table was nearly empty (a sequential scan per source) stayed in
    use as a surge grew the table. Each batch's window statement is planned for that batch."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL plan cache")
    petition = make_petition(session)
    for n in range(12):  # past the driver's prepare threshold, on one connection
        sign_batch(engine, settings, petition, [(f"s{n}@lab{n}.example.org", f"198.51.100.{n}")])
    with engine.connect() as conn:  # (the pool's one connection: the batches' own)
        prepared = conn.exec_driver_sql(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
        ).all()
    windows = [(generic, custom) for text, generic, custom in prepared if "LATERAL" in text]
    assert windows, prepared
    assert all(generic == 0 and custom > 0 for generic, custom in windows), windows


def test_the_signing_transaction_plans_without_jit_or_generic_plans(
    engine: Engine, settings: Settings, session: Session
) -> None:
    """The planner cannot know a batch's number of sources (100, it assumes, of a JSON
    function's rows): on a table of some 150,000 signatures its estimate passed
    jit_above_cost, and compiling each batch's statement took 8 ms of PostgreSQL's CPU for a
    0.5 ms query. JIT is off, and plans custom, for the signing transaction only."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's JIT")
    petition = make_petition(session)
    requests = [
        signature_service.SignRequest(
            petition,
            SignatureCreate(name="Batch Signer", email=f"j{n}@lab{n}.example.org", country="KR"),
            "en",
            SigningSource(ip=f"198.51.100.{n}"),
        )
        for n in range(3)
    ]
    show = text("SELECT current_setting('jit'), current_setting('plan_cache_mode')")
    with Session(engine) as signing:
        assert signing.execute(show).one() == ("on", "auto")  # the server's defaults
        signature_service.sign_many(signing, requests, settings=settings)
        assert signing.execute(show).one() == ("off", "force_custom_plan")
        signing.commit()
        assert signing.execute(show).one() == ("on", "auto")  # that transaction's only
