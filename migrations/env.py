"""Alembic environment: the URL comes from the caller's config or from Chorus's settings."""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import Engine, text

from app.core.config import get_settings
from app.core.db import UTCDateTime, make_engine, normalise_url
from app.models import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    return normalise_url(config.get_main_option("sqlalchemy.url") or get_settings().DATABASE_URL)


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Migrations must not import application code that may change later: write the plain
    # SQLAlchemy type that UTCDateTime stands on.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=metadata,
        compare_type=True,
        render_item=_render_item,
        render_as_batch=True,  # SQLite can only ALTER tables by copying them
        **kwargs,  # type: ignore[arg-type]
    )


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine: Engine = make_engine(_url(), pool_size=1)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # Several replicas may start at once: one migrates, the others wait and then
                # find nothing left to do. The lock is released with the transaction.
                conn.execute(text("SELECT pg_advisory_xact_lock(7240531)"))
            _configure(connection=conn)
            with context.begin_transaction():
                context.run_migrations()
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
