"""The outbox worker against a real SMTP server: retries, failures, leases, several workers."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, update
from sqlmodel import Session, col, select

from app.core.config import Settings
from app.core.db import utcnow
from app.email import outbox
from app.email import worker as worker_module
from app.email.devmailbox import free_port
from app.email.models import OUTBOX_FILLFACTOR, OutboxMessage, OutboxStatus
from app.email.service import EmailMessage, renderer
from app.email.smtp import mail_config
from app.email.worker import OutboxWorker
from app.signatures.models import Signature
from tests.conftest import Mailbox
from tests.factories import make_petition, signer


@renderer("test_note")
def _render_note(session: Session, payload: dict[str, Any], settings: Settings) -> EmailMessage:
    n = payload["n"]
    return EmailMessage(
        to=f"reader{n}@example.org", subject=f"Note {n}", text=f"Note {n}", html=f"<p>Note {n}</p>"
    )


def queue_notes(session: Session, count: int) -> None:
    for n in range(count):
        outbox.enqueue(session, kind="test_note", payload={"n": n}, dedup_key=f"note:{n}")
    session.commit()


def make_worker(
    settings: Settings,
    engine: Engine,
    *,
    port: int | None = None,
    name: str | None = None,
    **overrides: Any,
) -> OutboxWorker:
    worker_settings = settings.model_copy(update=overrides) if overrides else settings
    config = mail_config(
        worker_settings, server=settings.MAIL_SERVER or "", port=port or settings.MAIL_PORT
    )
    return OutboxWorker(worker_settings, engine, config, name=name)


def statuses(session: Session) -> list[str]:
    return sorted(m.status for m in session.exec(select(OutboxMessage)).all())


def make_due_now(session: Session) -> None:
    session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
    session.commit()


def test_each_message_is_sent_once_with_a_stable_message_id(
    session: Session, settings: Settings, engine: Engine, smtp: Mailbox
) -> None:
    queue_notes(session, 5)
    assert asyncio.run(make_worker(settings, engine).drain()) == 5
    messages = smtp.wait_for(5)
    assert sorted(str(m["Subject"]) for m in messages) == [f"Note {n}" for n in range(5)]
    ids = {m.id: m for m in session.exec(select(OutboxMessage)).all()}
    assert {str(m["Message-ID"]) for m in messages} == {f"<outbox-{i}@example.org>" for i in ids}
    assert statuses(session) == ["sent"] * 5
    assert all(m.sent_at is not None and m.locked_until is None for m in ids.values())
    # Nothing left to do: running again sends nothing more.
    assert asyncio.run(make_worker(settings, engine).drain()) == 0
    assert len(smtp.messages) == 5


def test_dedup_key_queues_a_message_once(session: Session) -> None:
    assert outbox.enqueue(session, kind="test_note", payload={"n": 1}, dedup_key="k")
    assert not outbox.enqueue(session, kind="test_note", payload={"n": 1}, dedup_key="k")
    session.commit()
    assert len(session.exec(select(OutboxMessage)).all()) == 1


def test_smtp_down_then_back_delivers_everything(
    session: Session, settings: Settings, engine: Engine, smtp: Mailbox
) -> None:
    queue_notes(session, 4)
    closed_port = free_port()  # nothing listens here: connection refused
    down = make_worker(settings, engine, port=closed_port)

    assert asyncio.run(down.drain(max_batches=1)) == 4
    rows = session.exec(select(OutboxMessage)).all()
    assert {r.status for r in rows} == {OutboxStatus.pending}
    assert all(
        r.attempts == 1 and r.last_error and r.next_attempt_at > utcnow() - timedelta(seconds=1)
        for r in rows
    )
    assert smtp.messages == []

    # Still down on the next try: backoff grows, nothing is lost.
    make_due_now(session)
    asyncio.run(down.drain(max_batches=1))
    assert {r.attempts for r in session.exec(select(OutboxMessage)).all()} == {2}

    time.sleep(0.3)  # past the (test-sized) backoff
    assert asyncio.run(make_worker(settings, engine).drain()) == 4
    smtp.wait_for(4)
    assert statuses(session) == ["sent"] * 4


def test_temporary_refusal_is_retried(
    session: Session, settings: Settings, engine: Engine, smtp: Mailbox
) -> None:
    queue_notes(session, 1)
    smtp.refuse_with = "451 4.3.0 Try again later"
    asyncio.run(make_worker(settings, engine).drain(max_batches=1))
    [row] = session.exec(select(OutboxMessage)).all()
    assert row.status == OutboxStatus.pending
    assert "451" in (row.last_error or "")

    smtp.refuse_with = None
    make_due_now(session)
    asyncio.run(make_worker(settings, engine).drain())
    smtp.wait_for(1)
    assert statuses(session) == ["sent"]


def test_permanent_refusal_fails_without_retrying(
    session: Session, settings: Settings, engine: Engine, smtp: Mailbox
) -> None:
    queue_notes(session, 1)
    smtp.refuse_with = "550 5.1.1 No such mailbox"
    asyncio.run(make_worker(settings, engine).drain())
    [row] = session.exec(select(OutboxMessage)).all()
    assert row.status == OutboxStatus.failed
    assert "550" in (row.last_error or "")
    assert row.attempts == 1


def test_gives_up_after_the_maximum_attempts(
    session: Session, settings: Settings, engine: Engine
) -> None:
    queue_notes(session, 1)
    down = make_worker(settings, engine, port=free_port(), OUTBOX_MAX_ATTEMPTS=3)
    for _ in range(3):
        make_due_now(session)
        asyncio.run(down.drain(max_batches=1))
    [row] = session.exec(select(OutboxMessage)).all()
    assert (row.status, row.attempts) == (OutboxStatus.failed, 3)


def test_a_crashed_workers_lease_expires_and_another_worker_sends(
    session: Session, settings: Settings, engine: Engine, smtp: Mailbox
) -> None:
    queue_notes(session, 3)
    crashed = make_worker(settings, engine, name="crashed")
    assert len(crashed.claim(10)) == 3  # claimed, then the process died before sending

    survivor = make_worker(settings, engine, name="survivor")
    assert asyncio.run(survivor.drain()) == 0  # leased: not taken while the lease runs
    session.execute(update(OutboxMessage).values(locked_until=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert asyncio.run(survivor.drain()) == 3
    smtp.wait_for(3)
    assert statuses(session) == ["sent"] * 3


def test_two_workers_never_send_the_same_message(
    session: Session, settings: Settings, engine: Engine, smtp: Mailbox
) -> None:
    queue_notes(session, 120)
    first = make_worker(settings, engine, name="first", WORKER_BATCH_SIZE=10)
    second = make_worker(settings, engine, name="second", WORKER_BATCH_SIZE=10)

    async def both() -> tuple[int, int]:
        a, b = await asyncio.gather(
            asyncio.to_thread(asyncio.run, first.drain()),
            asyncio.to_thread(asyncio.run, second.drain()),
        )
        return a, b

    handled = asyncio.run(both())
    assert sum(handled) == 120
    messages = smtp.wait_for(120)
    time.sleep(0.2)
    assert len(smtp.messages) == 120
    assert len({str(m["Message-ID"]) for m in messages}) == 120
    assert statuses(session) == ["sent"] * 120


def test_a_message_whose_subject_disappeared_is_cancelled(
    client, session: Session, settings: Settings, engine: Engine, smtp: Mailbox
) -> None:
    petition = make_petition(session)
    client.post(f"/api/v1/petitions/{petition.slug}/signatures", json=signer())
    session.delete(session.exec(select(Signature)).one())
    session.commit()
    asyncio.run(make_worker(settings, engine).drain())
    assert statuses(session) == ["cancelled"]
    assert smtp.messages == []


@pytest.mark.parametrize("kind", ["no_such_kind"])
def test_a_job_that_cannot_be_rendered_is_kept_for_retry(
    session: Session, settings: Settings, engine: Engine, kind: str
) -> None:
    outbox.enqueue(session, kind=kind, payload={})
    session.commit()
    asyncio.run(make_worker(settings, engine).drain(max_batches=1))
    [row] = session.exec(select(OutboxMessage)).all()
    assert row.status == OutboxStatus.pending
    assert "no renderer" in (row.last_error or "")


def test_a_worker_that_lost_its_lease_does_not_overwrite_the_result(
    session: Session, settings: Settings, engine: Engine, smtp: Mailbox
) -> None:
    queue_notes(session, 1)
    slow = make_worker(settings, engine, name="slow")
    [claim] = slow.claim(1)
    # The slow worker's lease runs out; another worker takes the message and sends it.
    session.execute(update(OutboxMessage).values(locked_until=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert asyncio.run(make_worker(settings, engine, name="fast").drain()) == 1
    smtp.wait_for(1)
    # The slow worker finally reports a failure: it must not undo "sent".
    slow.record_failure(claim, OSError("timed out"), permanent=True)
    assert statuses(session) == ["sent"]


def test_a_claim_reads_its_batch_off_the_pending_index_without_sorting_the_queue(
    session: Session, engine: Engine, settings: Settings
) -> None:
    """A surge queues messages faster than autovacuum gathers statistics: on none at all, the
    claim must still take its batch off the front of ix_outbox_pending, not sort the queue."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL plan")
    now = utcnow()
    session.execute(
        insert(OutboxMessage),
        [
            {"kind": "test_note", "payload": {"n": n}, "next_attempt_at": now, "created_at": now}
            for n in range(20_000)
        ],
    )
    worker = make_worker(settings, engine)
    with Session(engine) as planning:
        outbox.plan_claims_in_index_order(planning)
        claim = outbox.claim_statement(
            worker=worker.name, limit=200, lease_seconds=settings.OUTBOX_LEASE_SECONDS
        ).compile(dialect=engine.dialect)
        plan = "\n".join(
            row[0]
            for row in planning.connection().exec_driver_sql(f"EXPLAIN {claim}", claim.params)
        )
        planning.rollback()
    assert "Index Scan using ix_outbox_pending" in plan, plan
    assert "Sort" not in plan, plan
    assert len(worker.claim(200)) == 200


def test_a_claim_rewrites_no_index(engine: Engine, session: Session, settings: Settings) -> None:
    """A claim writes each message's lease and attempt, no indexed column: with room left on
    each page (the table's fillfactor) every one is a heap-only update, which writes none of
    the table's indexes (on full pages each claimed row went into all four again)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's storage")
    reloptions = (
        session.connection()
        .exec_driver_sql("SELECT reloptions FROM pg_class WHERE oid = 'outbox_message'::regclass")
        .scalar_one()
    )
    assert f"fillfactor={OUTBOX_FILLFACTOR}" in (reloptions or []), reloptions
    now = utcnow()
    session.execute(
        insert(OutboxMessage),
        [  # as a surge queues them
            {
                "kind": "signature_confirmation",
                "payload": {"signature_id": n},
                "dedup_key": outbox.confirmation_key(n, 1),
                "recipient": f"signer-{n}@example.org",
                "next_attempt_at": now,
                "created_at": now,
            }
            for n in range(1000)
        ],
    )
    session.commit()
    claimed = outbox.claim(
        session, worker="mail-worker-7.chorus.example.org:4194303", limit=1000, lease_seconds=60
    )
    # This transaction's own counts (pg_stat_get_xact_*: no waiting for statistics).
    updated, heap_only = (
        session.connection()
        .exec_driver_sql(
            "SELECT pg_stat_get_xact_tuples_updated(oid), pg_stat_get_xact_tuples_hot_updated(oid)"
            " FROM pg_class WHERE oid = 'outbox_message'::regclass"
        )
        .one()
    )
    session.commit()
    assert len(claimed) == updated == 1000
    assert heap_only == updated


def test_marking_sent_finds_the_messages_by_key_whatever_the_statistics_say(
    engine: Engine, session: Session
) -> None:
    """On statistics made before a surge (few pending messages, they say), PostgreSQL marked
    each batch "sent" by scanning the whole index of pending messages: 30-60 ms a batch in a
    surge, the queue draining ever slower as it grew. The batch's rows are found by key."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL plan")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE outbox_message")  # statistics of an empty queue
    now = utcnow()
    session.execute(
        insert(OutboxMessage),
        [
            {
                "kind": "signature_confirmation",
                "payload": {},
                "status": OutboxStatus.pending,
                "attempts": 0,
                "next_attempt_at": now,
                "locked_by": "w",
                "locked_until": now + timedelta(minutes=5),
                "created_at": now,
            }
            for _ in range(3000)
        ],
    )
    session.commit()
    ids = list(session.exec(select(OutboxMessage.id).order_by(col(OutboxMessage.id))).all())[-5:]
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.startswith("UPDATE outbox_message"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with Session(engine) as marking:
            assert outbox.mark_sent(marking, [i for i in ids if i is not None], worker="w") == 5
            statement, parameters = seen[-1]
            plan = "\n".join(
                row[0]
                for row in marking.connection().exec_driver_sql(f"EXPLAIN {statement}", parameters)
            )
            marking.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert "ix_outbox_pending" not in plan, plan
    assert "outbox_message_pkey" in plan, plan


def test_a_commit_of_sent_marks_waits_for_the_lanes_still_sending_and_only_for_them(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lanes share the commits that mark their messages sent: a commit waits a moment for the
    lanes handing a message to the server that moment (worker.FLUSH_LINGER_SECONDS), so that
    their marks join it; with no lane sending, it does not wait."""
    monkeypatch.setattr(worker_module, "FLUSH_LINGER_SECONDS", 0.5)  # (generous: any machine)
    worker = make_worker(settings, engine)
    commits: list[list[int]] = []
    monkeypatch.setattr(
        worker, "record_sent_many", lambda claims: commits.append([c.id for c in claims])
    )

    def claim(n: int) -> outbox.Claimed:
        return outbox.Claimed(id=n, kind="test_note", payload={"n": n}, attempts=0)

    async def lanes() -> float:
        worker._sending = 1  # a second lane is handing its message to the server
        first = asyncio.create_task(worker.mark_sent(claim(1)))
        await asyncio.sleep(0.05)
        worker._sending = 0
        await worker.mark_sent(claim(2))  # its message accepted: it joins the same commit
        await first
        started = time.monotonic()
        await worker.mark_sent(claim(3))  # nobody else sending: committed at once
        return time.monotonic() - started

    alone = asyncio.run(lanes())
    assert commits == [[1, 2], [3]]
    assert alone < 0.25
