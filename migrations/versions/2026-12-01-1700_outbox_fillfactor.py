"""outbox_message: pages 40 % filled by inserts, so that a claim is a heap-only update

A worker's claim writes each message again (lease, attempt) without touching an indexed column;
on a full page PostgreSQL puts the new version elsewhere and writes every index again. With
fillfactor 40 it stays on its page as a heap-only tuple (at 50 one in eight did not fit: the
new version carries the worker's name). Pages written from now on get the
setting; the pages of messages already queued keep theirs. Nothing on SQLite.

Revision ID: 3f8a1c5e7b20
Revises: 9c4d2e7f1a36
Create Date: 2026-12-01 17:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3f8a1c5e7b20"
down_revision: str | None = "9c4d2e7f1a36"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE outbox_message SET (fillfactor = 40)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE outbox_message RESET (fillfactor)")
