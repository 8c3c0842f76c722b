"""donations: webhook event status, payment intents of monthly payments, donor anonymisation

- stripe_event.status / reason: a signed event of the wrong shape is answered 400 and kept
  (status `rejected`) for inspection; `created` may be missing from such an event.
- donation_payment.stripe_payment_intent_id: since Stripe's 2025-03-31 API an invoice has no
  payment_intent, so a monthly payment (keyed by its invoice) learns its PaymentIntent from
  `invoice_payment.paid`; refunds refer to the PaymentIntent. Payments keyed by a PaymentIntent
  (one-off gifts, and monthly ones under the old API) get it filled in.
- donation.anonymised_at: set when `chorus anonymise` removed the donor's personal data.

Revision ID: 5d0a7c3e9b21
Revises: 728189117e65
Create Date: 2026-11-30 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d0a7c3e9b21"
down_revision: str | None = "728189117e65"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stripe_event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), server_default="applied", nullable=False)
        )
        batch_op.add_column(sa.Column("reason", sa.String(length=2000), nullable=True))
        batch_op.alter_column("created", existing_type=sa.BigInteger(), nullable=True)

    with op.batch_alter_table("donation_payment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stripe_payment_intent_id", sa.String(length=255), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_donation_payment_stripe_payment_intent_id"),
            ["stripe_payment_intent_id"],
            unique=False,
        )
    op.execute(
        "UPDATE donation_payment SET stripe_payment_intent_id = stripe_key "
        "WHERE stripe_key LIKE 'pi\\_%' ESCAPE '\\'"
    )

    with op.batch_alter_table("donation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("anonymised_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("donation", schema=None) as batch_op:
        batch_op.drop_column("anonymised_at")

    with op.batch_alter_table("donation_payment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_donation_payment_stripe_payment_intent_id"))
        batch_op.drop_column("stripe_payment_intent_id")

    op.execute("DELETE FROM stripe_event WHERE created IS NULL")
    with op.batch_alter_table("stripe_event", schema=None) as batch_op:
        batch_op.alter_column("created", existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_column("reason")
        batch_op.drop_column("status")
