"""target translations

Officials had one name, role and organisation, so Korean and Ukrainian pages and letters showed
them in English. Each target gets `translations` ({locale: {name, role, organisation}}), as
petitions keep their texts. The existing columns stay as they are: they are the default, shown
in any language without a translation, so every existing target reads exactly as before.

Revision ID: 87b5bc12aa71
Revises: 5d0a7c3e9b21
Create Date: 2026-11-30 18:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "87b5bc12aa71"
down_revision: str | None = "5d0a7c3e9b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("target", schema=None) as batch_op:
        # Existing rows get no translation: they keep showing their default fields.
        batch_op.add_column(
            sa.Column("translations", sa.JSON(), server_default="{}", nullable=False)
        )


def downgrade() -> None:
    # The default fields were never changed, so dropping the translations loses only them.
    with op.batch_alter_table("target", schema=None) as batch_op:
        batch_op.drop_column("translations")
