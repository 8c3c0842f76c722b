"""petition_update.send_key: a request to send an update, repeated, sends nothing more

Revision ID: 9c4d2e7f1a36
Revises: 5b1e0c7d9a42
Create Date: 2026-11-30 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9c4d2e7f1a36"
down_revision: str | None = "5b1e0c7d9a42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("petition_update") as batch:
        batch.add_column(sa.Column("send_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("first_send_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_send_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_unique_constraint(
            "uq_petition_update_petition_id_send_key", ["petition_id", "send_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("petition_update") as batch:
        batch.drop_constraint("uq_petition_update_petition_id_send_key", type_="unique")
        batch.drop_column("last_send_at")
        batch.drop_column("first_send_at")
        batch.drop_column("send_key")
