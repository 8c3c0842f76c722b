"""outbox failed index

Admins list the messages the worker gave up on (GET /api/v1/admin/outbox?status=failed). A
partial index holding only failed messages finds them without reading all the mail ever sent,
and costs the sending nothing (a message enters it only when it fails).

Revision ID: de27ce8ed748
Revises: 87b5bc12aa71
Create Date: 2026-11-30 18:36:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "de27ce8ed748"
down_revision: str | None = "87b5bc12aa71"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_failed",
            ["id"],
            unique=False,
            postgresql_where=sa.text("status = 'failed'"),
            sqlite_where=sa.text("status = 'failed'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_failed",
            postgresql_where=sa.text("status = 'failed'"),
            sqlite_where=sa.text("status = 'failed'"),
        )
