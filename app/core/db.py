"""Database engine, sessions and the few portable SQL helpers the services share.

Chorus uses synchronous SQLAlchemy everywhere (FastAPI runs sync endpoints in its thread pool).
PostgreSQL is the production database; SQLite is the embedded default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores `timestamptz`; SQLite stores naive UTC text, which compares correctly as
    long as every value goes through here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def normalise_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str, *, pool_size: int = 10, pool_timeout: float = 30.0) -> Engine:
    """An engine for `url` with `pool_size` connections (and twice as many in overflow).

    A request that waits `pool_timeout` seconds for a free connection, or for a new one to
    open, fails with a 503 (app/core/errors.py). PostgreSQL connections are not pinged before
    each use (that is a round trip per request): a connection found dead fails its request with
    a 503, and SQLAlchemy then discards the whole pool, so the next requests get fresh ones.

    `?prepare_threshold=N` in a PostgreSQL URL sets psycopg's (`none`: never prepare), for a
    PgBouncer in transaction mode that does not track prepared statements (README, "Scaling
    out"); psycopg would otherwise take it for a connection parameter."""
    url = normalise_url(url)
    pool = {"pool_size": pool_size, "max_overflow": pool_size * 2, "pool_timeout": pool_timeout}
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if "prepare_threshold" in parsed.query:
        threshold = str(parsed.query["prepare_threshold"]).strip().lower()
        connect_args["prepare_threshold"] = None if threshold == "none" else int(threshold)
        parsed = parsed.difference_update_query(["prepare_threshold"])
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        in_memory = not parsed.database or parsed.database == ":memory:"  # (one connection)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **({} if in_memory else pool),
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # We issue BEGIN ourselves (below), so the driver must not.
            dbapi_connection.isolation_level = None
            # WAL lets the server read while the worker writes; foreign keys are off by default.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin_immediate(conn: Any) -> None:
            # A transaction that reads and then writes cannot upgrade its lock while another
            # writer is active ("database is locked", whatever the busy timeout). Taking the
            # write lock at BEGIN makes concurrent writers wait their turn instead; readers
            # are not blocked in WAL mode.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args["connect_timeout"] = max(1, round(pool_timeout))  # stopped server: 503 soon
    return create_engine(
        parsed,
        pool_recycle=1800,
        connect_args=connect_args,
        **pool,
    )


def set_for_transaction(session: Session, **settings: str) -> None:
    """PostgreSQL settings (a planner's, say) for the rest of the caller's transaction only
    (`set_config(..., true)`), all in one statement: nothing outlives the transaction, so a
    PgBouncer in transaction mode may hand the connection to anyone next. Nothing on SQLite,
    which has no such settings."""
    if session.get_bind().dialect.name == "postgresql":
        names = list(settings)
        sql = "SELECT " + ", ".join(
            f"set_config(%(name_{n})s, %(value_{n})s, true)" for n in range(len(names))
        )
        params = {f"name_{n}": name for n, name in enumerate(names)}
        params.update({f"value_{n}": settings[name] for n, name in enumerate(names)})
        session.connection().exec_driver_sql(sql, params)


def dialect_insert(session: Session) -> Any:
    """The dialect's INSERT construct, which offers ON CONFLICT on PostgreSQL and SQLite."""
    return insert_for(session.get_bind().dialect.name)


def insert_for(name: str) -> Any:
    """dialect_insert for the dialect called `name` (a connection's `dialect.name`)."""
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise RuntimeError(f"unsupported database dialect {name!r}")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error. For the CLI and the worker."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
