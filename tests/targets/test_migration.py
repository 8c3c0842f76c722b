"""The target translations migration keeps every official as it was, and undoes cleanly."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import create_engine, inspect, text
from sqlmodel import Session, select

from app.core import migrations
from app.core.db import normalise_url
from app.targets.models import Target

BEFORE = "5d0a7c3e9b21"  # the head before target translations
TRANSLATIONS = "87b5bc12aa71"

CAMPAIGN = sa.table(
    "campaign",
    sa.column("id", sa.Integer),
    sa.column("slug", sa.String),
    sa.column("default_locale", sa.String),
    sa.column("translations", sa.JSON),
    sa.column("currencies", sa.JSON),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
TARGET = sa.table(
    "target",
    sa.column("id", sa.Integer),
    sa.column("campaign_id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("name", sa.String),
    sa.column("role", sa.String),
    sa.column("organisation", sa.String),
    sa.column("country", sa.String),
    sa.column("language", sa.String),
    sa.column("email", sa.String),
    sa.column("delivery_channel", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
OFFICIAL = {
    "key": "ua-president",
    "name": "President of Ukraine",
    "role": "President",
    "organisation": "Office of the President of Ukraine",
}


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (PostgreSQL when DATABASE_URL names one)."""
    configured = os.environ.get("DATABASE_URL", "")
    if not configured.startswith(("postgresql", "postgres:")):
        yield f"sqlite:///{tmp_path / 'targets.db'}"
        return
    base = normalise_url(configured).rpartition("/")[0]
    name = f"chorus_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_existing_officials_keep_their_fields_as_the_default_and_downgrade_keeps_them(
    fresh_url: str,
) -> None:
    migrations.upgrade(fresh_url, BEFORE)
    engine = create_engine(normalise_url(fresh_url))
    now = datetime(2026, 11, 1, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            conn.execute(
                CAMPAIGN.insert().values(
                    id=1,
                    slug="free-them",
                    default_locale="en",
                    translations={"en": {"name": "Free them"}},
                    currencies=["EUR"],
                    created_at=now,
                )
            )
            conn.execute(
                TARGET.insert().values(
                    id=1,
                    campaign_id=1,
                    country="UA",
                    language="uk",
                    email="president@ukraine.example",
                    delivery_channel="email",
                    created_at=now,
                    **OFFICIAL,
                )
            )

        migrations.upgrade(fresh_url, TRANSLATIONS)
        with Session(engine) as session:
            target = session.exec(select(Target)).one()
            assert {k: getattr(target, k) for k in OFFICIAL} == OFFICIAL
            assert target.translations == {}
            # Every language shows the existing fields until an organiser translates them.
            expected = {k: v for k, v in OFFICIAL.items() if k != "key"}
            assert target.text("ko") == target.text("uk") == expected
            target.translations = {"uk": {"name": "Президент України"}}
            session.add(target)
            session.commit()
            assert target.text("uk")["name"] == "Президент України"

        migrations.downgrade(fresh_url, BEFORE)
        columns = {c["name"] for c in inspect(engine).get_columns("target")}
        assert "translations" not in columns
        with engine.connect() as conn:
            row = conn.execute(sa.select(TARGET).where(TARGET.c.id == 1)).mappings().one()
        assert {k: row[k] for k in OFFICIAL} == OFFICIAL
        assert (row["email"], row["language"]) == ("president@ukraine.example", "uk")

        migrations.upgrade(fresh_url, TRANSLATIONS)  # and up again
        with Session(engine) as session:
            assert session.exec(select(Target)).one().translations == {}
    finally:
        engine.dispose()
