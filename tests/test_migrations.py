"""The schema comes from the migrations, and the models agree with them."""

from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, inspect, text

from app.core import migrations
from app.core.db import normalise_url
from app.models import metadata


def test_models_and_migrations_agree(migrated_url: str) -> None:
    # Raises if `alembic check` would find a difference.
    migrations.check(migrated_url)


def test_migrations_create_every_table(migrated_url: str) -> None:
    engine = create_engine(normalise_url(migrated_url))
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert set(metadata.tables) <= tables


def test_downgrade_to_base_and_back(tmp_path) -> None:
    configured = os.environ.get("DATABASE_URL", "")
    if configured.startswith(("postgresql", "postgres:")):
        base = normalise_url(configured).rpartition("/")[0]
        name = f"chorus_mig_{uuid.uuid4().hex[:8]}"
        admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = f"{base}/{name}"
    else:
        admin, name, url = None, "", f"sqlite:///{tmp_path / 'roundtrip.db'}"
    try:
        migrations.upgrade(url)
        migrations.downgrade(url, "base")
        engine = create_engine(normalise_url(url))
        remaining = set(inspect(engine).get_table_names()) - {"alembic_version"}
        engine.dispose()
        assert remaining == set()
        migrations.upgrade(url)
        migrations.check(url)
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
