"""The outbox: the one module that writes `outbox_message`.

A message is a row written in the transaction that causes it, so it exists exactly when its
cause was committed; `chorus worker` renders and sends it afterwards (app/email/worker.py).

- Queueing: `enqueue` (one), `enqueue_many` (a list, one statement), `enqueue_from_query`
  (INSERT ... SELECT: an update to every signer), and `queue_statement`, that same insert as
  a piece of a larger statement (the PostgreSQL signing batch queues its confirmation e-mails
  in the statement that stores the signatures: one round trip). The de-duplication keys of the
  messages queued from several places are spelt here, once (`confirmation_key`, ...).
- The worker's transitions: `claim` (a lease), then `mark_sent`, `retry_later`, `fail`,
  `defer` or `cancel`, each of which changes only a message the worker still holds.
- Rights and retention: `forget_recipients`, `forget_recipients_where`.
- Reads: the admins' listing (`messages`), a signer's messages (`messages_to`), the outcome a
  delivery log shows (`outcomes`), keys already queued, the schedule of a kind's messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, overload

from sqlalchemy import (
    BigInteger,
    ClauseElement,
    ColumnElement,
    Insert,
    Integer,
    Select,
    SQLColumnExpression,
    String,
    Subquery,
    Update,
    bindparam,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from app.core.db import dialect_insert, set_for_transaction, utcnow
from app.core.metrics import Gauge
from app.email.models import OutboxEntry, OutboxMessage, OutboxStatus

TABLE = OutboxMessage.__table__  # type: ignore[attr-defined]

# What the rows given to queue_statement / enqueue_from_query hold, in this order.
QUERY_COLUMNS = ("kind", "payload", "dedup_key", "recipient", "next_attempt_at", "created_at")


# --- de-duplication keys --------------------------------------------------------------------------


def dedup_key(*parts: int | str) -> str:
    """A de-duplication key: its parts joined by ':'."""
    return ":".join(str(part) for part in parts)


def dedup_key_sql(*parts: int | str | SQLColumnExpression[Any]) -> ColumnElement[str]:
    """The SQL that spells, for each row, the key `dedup_key` spells for the same parts (a
    column's value as text): the key of messages queued from a query."""
    pieces: list[ColumnElement[Any]] = []
    constant = ""
    for index, part in enumerate(parts):
        separator = ":" if index else ""
        if isinstance(part, int | str):
            constant += f"{separator}{part}"
        else:
            if constant + separator:
                pieces.append(literal(constant + separator, String))
            constant = ""
            pieces.append(cast(part, String))
    if constant:
        pieces.append(literal(constant, String))
    key = pieces[0]
    for piece in pieces[1:]:
        key = key + piece
    return key


_CONFIRMATION = "signature-confirmation"


_SQLPart = SQLColumnExpression[Any]


@overload
def confirmation_key(signature_id: int, send: int | str) -> str: ...
@overload
def confirmation_key(signature_id: _SQLPart, send: int | str | _SQLPart) -> ColumnElement[str]: ...
def confirmation_key(
    signature_id: int | _SQLPart, send: int | str | _SQLPart
) -> str | ColumnElement[str]:
    """The key of a signature's confirmation e-mail number `send`: 1 for the first, up to
    MAX_CONFIRMATION_SENDS for those sent when someone signs again, "released" for the one a
    held signature gets when an organiser releases it. Given SQL expressions (a column of
    signature ids, of send counts), the SQL that spells the same key for each row (the
    PostgreSQL signing batch)."""
    if isinstance(signature_id, int) and isinstance(send, int | str):
        return dedup_key(_CONFIRMATION, signature_id, send)
    return dedup_key_sql(_CONFIRMATION, signature_id, send)


_ALREADY_SIGNED = "signature-already-signed"


@overload
def already_signed_key(signature_id: int, day: str) -> str: ...
@overload
def already_signed_key(signature_id: _SQLPart, day: str | _SQLPart) -> ColumnElement[str]: ...
def already_signed_key(
    signature_id: int | _SQLPart, day: str | _SQLPart
) -> str | ColumnElement[str]:
    """The key of the "you have already signed" e-mail: one per signature and day (YYYY-MM-DD),
    so the form cannot be used to flood someone's inbox. SQL expressions give the SQL."""
    if isinstance(signature_id, int) and isinstance(day, str):
        return dedup_key(_ALREADY_SIGNED, signature_id, day)
    return dedup_key_sql(_ALREADY_SIGNED, signature_id, day)


# --- queueing -------------------------------------------------------------------------------------


def enqueue(
    session: Session,
    *,
    kind: str,
    payload: dict[str, Any],
    dedup_key: str | None = None,
    recipient: str | None = None,
    not_before: datetime | None = None,
) -> int | None:
    """Queue an e-mail job in the caller's transaction; it is sent from `not_before` (now).

    Returns the job's id, or None (and queues nothing) when a job with the same `dedup_key`
    already exists, so retries and concurrent requests cannot queue the same message twice.
    """
    insert = dialect_insert(session)
    stmt = (
        insert(TABLE)  # Core, not the ORM-enabled insert: this runs for every signature
        .values(
            kind=kind,
            payload=payload,
            dedup_key=dedup_key,
            recipient=recipient,
            next_attempt_at=not_before or utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(TABLE.c.id)
    )
    new_id: int | None = session.execute(stmt).scalar_one_or_none()
    return new_id


def enqueue_many(session: Session, jobs: list[dict[str, Any]]) -> None:
    """Queue several e-mail jobs (each with kind, payload, dedup_key, recipient) in one
    statement; jobs whose dedup_key exists already are skipped."""
    if not jobs:
        return
    now = utcnow()
    session.execute(
        dialect_insert(session)(TABLE).on_conflict_do_nothing(),
        [{**job, "next_attempt_at": now} for job in jobs],
    )


def queue_statement(rows: Select[*tuple[Any, ...]], *, dialect: str) -> Insert:
    """INSERT ... SELECT: a pending message per row of `rows`, whose columns are QUERY_COLUMNS
    in that order; a row whose dedup_key is taken already is skipped. For enqueue_from_query,
    and as a CTE of a statement that makes the rows' subjects in the same round trip."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    pending = rows.add_columns(
        literal_column(f"'{OutboxStatus.pending.value}'", String), literal_column("0", Integer)
    )
    # Every column given, none left to a default: the rows may come from a statement whose own
    # parameters are named after columns (the signing batch's "status").
    # (The WHERE keeps SQLite from reading the ON of ON CONFLICT as a join's; a no-op where
    # the rows have their own.)
    return (
        insert(TABLE)
        .from_select(
            [*QUERY_COLUMNS, "status", "attempts"], pending.where(true()), include_defaults=False
        )
        .on_conflict_do_nothing()
    )


def enqueue_from_query(session: Session, rows: Select[*tuple[Any, ...]]) -> int:
    """Queue a message per row of `rows` (see queue_statement) in one statement, however many
    rows there are. Returns how many were queued."""
    statement = queue_statement(rows, dialect=session.get_bind().dialect.name)
    # psycopg reports the rows an INSERT ... SELECT wrote only when asked to keep it.
    result = session.execute(statement.execution_options(preserve_rowcount=True))
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- the worker's claims and results --------------------------------------------------------------


@dataclass
class Claimed:
    """A message leased to a worker: what the worker needs to render it."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


def claim_statement(*, worker: str, limit: int, lease_seconds: float) -> Update:
    """Lease up to `limit` due messages to `worker`, returning what it needs of them."""
    now = utcnow()
    due = (
        select(col(OutboxMessage.id))
        .where(
            # A literal, not a parameter: a prepared statement's generic plan can use the
            # partial index only when the condition is visibly its predicate.
            col(OutboxMessage.status) == literal_column(f"'{OutboxStatus.pending.value}'"),
            col(OutboxMessage.next_attempt_at) <= now,
            or_(col(OutboxMessage.locked_until).is_(None), col(OutboxMessage.locked_until) < now),
        )
        .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (
        update(OutboxMessage)
        .where(col(OutboxMessage.id).in_(due.scalar_subquery()))
        .values(
            locked_until=now + timedelta(seconds=lease_seconds),
            locked_by=worker,
            attempts=OutboxMessage.attempts + 1,
        )
        .returning(
            col(OutboxMessage.id),
            col(OutboxMessage.kind),
            col(OutboxMessage.payload),
            col(OutboxMessage.attempts),
        )
        .execution_options(synchronize_session=False)
    )


def plan_claims_in_index_order(session: Session) -> None:
    """Make this transaction's claim read its batch off the front of ix_outbox_pending.

    That index is in the claim's order, but in a surge the queue grows faster than autovacuum
    refreshes the statistics; on stale ones PostgreSQL believes a few rows are pending and
    fetches and sorts all of them instead (100k: 80 ms per claim, spilled to disk), while the
    index gives the batch in a millisecond whatever the statistics say.
    """
    set_for_transaction(session, enable_sort="off")


def claim(session: Session, *, worker: str, limit: int, lease_seconds: float) -> list[Claimed]:
    """Lease up to `limit` due messages to `worker` for `lease_seconds`, in id order; the caller
    commits at once (other workers skip them from then on)."""
    plan_claims_in_index_order(session)
    statement = claim_statement(worker=worker, limit=limit, lease_seconds=lease_seconds)
    rows = session.execute(statement).all()
    return sorted((Claimed(*row) for row in rows), key=lambda claimed: claimed.id)


@cache
def _held_update(names: tuple[str, ...]) -> Update:
    """The UPDATE of messages a worker still holds, setting the columns `names` (bound per
    execution): built once per set of columns. Built and run through the ORM for each flush,
    it was a sixth of a mail worker's time in a surge (its "sent" marks)."""
    return (
        update(TABLE)
        .where(
            TABLE.c.id.in_(bindparam("ids", expanding=True)),
            TABLE.c.locked_by == bindparam("worker"),
            # `status || ''`, not `status`: PostgreSQL then cannot use ix_outbox_pending (whose
            # predicate is status = 'pending') and finds the rows by primary key. With the
            # plain condition, on statistics older than a surge (few pending, they say) it
            # scanned the whole pending index for each batch's ids: every "sent" mark cost as
            # much as the backlog, 30-60 ms each in a surge, and the queue drained ever slower.
            TABLE.c.status.concat("") == OutboxStatus.pending,
        )
        .values({name: bindparam(f"new_{name}", type_=TABLE.c[name].type) for name in names})
    )


def _update_held(session: Session, ids: list[int], *, worker: str, **values: Any) -> int:
    """Update the messages `worker` still holds; one whose lease ran out (and which another
    worker may have taken over) is left alone. Returns how many changed."""
    # A value computed by the database (attempts - 1) is written into the statement.
    computed = {
        name: v
        for name, v in values.items()
        if isinstance(v, ClauseElement) or hasattr(v, "__clause_element__")
    }
    parameters = {f"new_{name}": v for name, v in values.items() if name not in computed}
    statement = _held_update(tuple(sorted(name for name in values if name not in computed)))
    if computed:
        statement = statement.values(computed)
    result = session.connection().execute(statement, {"ids": ids, "worker": worker, **parameters})
    return int(result.rowcount)


def mark_sent(session: Session, ids: list[int], *, worker: str) -> int:
    """Messages the SMTP server accepted. Returns how many `worker` still held."""
    return _update_held(
        session,
        ids,
        worker=worker,
        status=OutboxStatus.sent,
        locked_until=None,
        last_error=None,
        sent_at=utcnow(),
    )


def retry_later(
    session: Session, message_id: int, *, worker: str, at: datetime, reason: str
) -> bool:
    """A message to try again from `at`, and why it was not sent. False: lease lost."""
    held = _update_held(
        session,
        [message_id],
        worker=worker,
        next_attempt_at=at,
        locked_until=None,
        last_error=reason,
    )
    return held == 1


def fail(session: Session, message_id: int, *, worker: str, reason: str) -> bool:
    """A message given up on, kept with its reason for admins. False: lease lost."""
    held = _update_held(
        session,
        [message_id],
        worker=worker,
        status=OutboxStatus.failed,
        locked_until=None,
        last_error=reason,
    )
    return held == 1


def defer(session: Session, message_id: int, *, worker: str, at: datetime) -> bool:
    """A message its sender did not try yet (it waits for an earlier one, see SENDERS in
    app/email/service.py): due again from `at`, its claim not counted as an attempt. False:
    lease lost."""
    held = _update_held(
        session,
        [message_id],
        worker=worker,
        next_attempt_at=at,
        locked_until=None,
        attempts=OutboxMessage.attempts - 1,
    )
    return held == 1


def cancel(session: Session, message_id: int, *, worker: str) -> bool:
    """A message whose subject no longer calls for it (a withdrawn signature). False: lease
    lost."""
    held = _update_held(
        session,
        [message_id],
        worker=worker,
        status=OutboxStatus.cancelled,
        locked_until=None,
        last_error=None,
    )
    return held == 1


# --- rights and retention -------------------------------------------------------------------------


def payload_int(field: str) -> ColumnElement[int]:
    """A message's payload[`field`] as an integer, for conditions that match messages to their
    subjects (`forget_recipients_where`)."""
    return cast(OutboxMessage.payload[field].as_string(), BigInteger)


def _forget(session: Session, *conditions: ColumnElement[bool]) -> int:
    result = session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.recipient).is_not(None), *conditions)
        .values(
            recipient=None,
            status=case(
                (
                    col(OutboxMessage.status) == OutboxStatus.pending,
                    literal(OutboxStatus.cancelled.value, String),
                ),
                else_=col(OutboxMessage.status),
            ),
        )
        .returning(col(OutboxMessage.id))
        .execution_options(synchronize_session=False)
    )
    return len(result.scalars().all())


def forget_recipients(session: Session, *, kind: str, payload_field: str, values: list[str]) -> int:
    """Clear the recipient of the `kind` messages whose payload[`payload_field`] is one of
    `values` (their subject's personal data was removed); those still pending are cancelled.
    Returns how many messages changed."""
    if not values:
        return 0
    return _forget(
        session,
        col(OutboxMessage.kind) == kind,
        OutboxMessage.payload[payload_field].as_string().in_(values),
    )


def id_span(session: Session) -> tuple[int, int] | None:
    """The lowest and highest message id, or None for an empty outbox (to walk it in windows)."""
    low, high = session.execute(
        select(func.min(col(OutboxMessage.id)), func.max(col(OutboxMessage.id)))
    ).one()
    if low is None or high is None:
        return None
    return int(low), int(high)


def forget_recipients_where(session: Session, about: ColumnElement[bool], *, ids: range) -> int:
    """As forget_recipients, for the messages with an id in `ids` for which `about` holds (a
    condition on their payload, see payload_int). Returns how many messages changed."""
    return _forget(
        session, col(OutboxMessage.id) >= ids.start, col(OutboxMessage.id) < ids.stop, about
    )


# --- reads ----------------------------------------------------------------------------------------


def messages(
    session: Session, *, status: OutboxStatus | None = None, after: int = 0, limit: int = 100
) -> tuple[list[OutboxEntry], int | None]:
    """The outbox's messages in the order they were queued, from after the id `after`, of one
    `status` or all. -> (a page of them, the `after` of the next page or None)"""
    query = select(OutboxMessage).where(col(OutboxMessage.id) > after)
    if status is not None:
        query = query.where(col(OutboxMessage.status) == status)
    rows = session.scalars(query.order_by(col(OutboxMessage.id)).limit(limit + 1)).all()
    entries = [OutboxEntry.model_validate(row, from_attributes=True) for row in rows[:limit]]
    return entries, (entries[-1].id if len(rows) > limit else None)


@dataclass(frozen=True)
class Sent:
    """A message as its recipient's data download lists it."""

    kind: str
    status: str
    created_at: datetime
    sent_at: datetime | None


def messages_to(session: Session, *, recipient: str, limit: int = 1000) -> list[Sent]:
    """The messages queued for an address, oldest first (at most `limit`)."""
    rows = session.execute(
        select(
            col(OutboxMessage.kind),
            col(OutboxMessage.status),
            col(OutboxMessage.created_at),
            col(OutboxMessage.sent_at),
        )
        .where(col(OutboxMessage.recipient) == recipient)
        .order_by(col(OutboxMessage.created_at), col(OutboxMessage.id))
        .limit(limit)
    )
    return [Sent(kind, str(status), created, sent) for kind, status, created, sent in rows]


def outcomes() -> Subquery:
    """Each message's outcome (id, status, last_error, attempts, sent_at, next_attempt_at): for
    a log of rows that each carry a message id to join (the letters' delivery log, the order of
    a webhook's events)."""
    return select(
        col(OutboxMessage.id),
        col(OutboxMessage.status),
        col(OutboxMessage.last_error),
        col(OutboxMessage.attempts),
        col(OutboxMessage.sent_at),
        col(OutboxMessage.next_attempt_at),
    ).subquery("outbox_outcome")


def queued_keys(session: Session, keys: list[str]) -> set[str]:
    """Which of these de-duplication keys are queued already."""
    if not keys:
        return set()
    found = session.scalars(
        select(col(OutboxMessage.dedup_key)).where(col(OutboxMessage.dedup_key).in_(keys))
    )
    return {key for key in found if key is not None}


def last_untried_due(session: Session, *, kind: str) -> datetime | None:
    """When the last `kind` message not tried yet is due (None: there is none). A message
    waiting to retry after an error does not count."""
    last = session.execute(
        select(func.max(OutboxMessage.next_attempt_at)).where(
            col(OutboxMessage.status) == OutboxStatus.pending,
            col(OutboxMessage.kind) == kind,
            col(OutboxMessage.attempts) == 0,
        )
    ).scalar_one()
    if last is None:
        return None
    if isinstance(last, datetime) and last.tzinfo is not None:
        return last
    # An aggregate comes back as the driver's value (SQLite: the stored text).
    return datetime.fromisoformat(str(last)).replace(tzinfo=UTC)


# --- the queue's state, for the people who watch it --------------------------------------------


@dataclass(frozen=True)
class QueueState:
    pending: int  # messages not sent yet (counted up to `cap`)
    failed: int  # messages given up on, kept for inspection (counted up to `cap`)
    cap: int  # a count equal to it means "at least this many"
    waiting_since: datetime | None  # when the longest-waiting due message became due


def queue_state(session: Session, *, now: datetime | None = None, cap: int = 10_000) -> QueueState:
    """How the outbox is doing. Counts stop at `cap` (a surge can queue hundreds of thousands)
    and read only the partial indexes of pending and failed messages, never the whole table."""
    now = now or utcnow()

    def is_(status: OutboxStatus) -> Any:
        # A literal, not a parameter: a prepared statement's generic plan could not know that
        # the partial index applies (see the worker's claim).
        return col(OutboxMessage.status) == literal_column(f"'{status.value}'")

    def count(status: OutboxStatus) -> int:
        some = select(col(OutboxMessage.id)).where(is_(status)).limit(cap).subquery()
        return int(session.execute(select(func.count()).select_from(some)).scalar_one())

    # The claim's own index: its first entry is the message due the longest.
    first_due = session.execute(
        select(func.min(OutboxMessage.next_attempt_at)).where(is_(OutboxStatus.pending))
    ).scalar_one_or_none()
    return QueueState(
        pending=count(OutboxStatus.pending),
        failed=count(OutboxStatus.failed),
        cap=cap,
        waiting_since=first_due if first_due is not None and first_due <= now else None,
    )


def outbox_gauges(session: Session) -> list[Gauge]:
    """The outbox as /metrics shows it, in one statement that reads only the two partial
    indexes (pending, failed), never the history of sent messages."""

    def where(status: OutboxStatus) -> Any:
        # A literal, so that a prepared statement's generic plan still sees the index predicate.
        return col(OutboxMessage.status) == literal_column(f"'{status.value}'")

    pending = select(func.count()).select_from(OutboxMessage).where(where(OutboxStatus.pending))
    first_due = select(func.min(OutboxMessage.next_attempt_at)).where(where(OutboxStatus.pending))
    failed = select(func.count()).select_from(OutboxMessage).where(where(OutboxStatus.failed))
    row = session.execute(
        select(pending.scalar_subquery(), first_due.scalar_subquery(), failed.scalar_subquery())
    ).one()
    oldest = 0.0 if row[1] is None else max(0.0, (utcnow() - row[1]).total_seconds())
    return [
        Gauge("chorus_outbox_pending", "E-mails waiting to be sent (due or retrying)", row[0]),
        Gauge("chorus_outbox_failed", "E-mails that failed for good (kept for inspection)", row[2]),
        Gauge(
            "chorus_outbox_oldest_due_seconds",
            "How long the pending e-mail due the longest has been due (0: none due)",
            oldest,
        ),
    ]
