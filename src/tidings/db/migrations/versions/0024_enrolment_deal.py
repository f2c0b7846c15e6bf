"""enrolments know the deal that started them (issue 15, deal triggers): a deal_id column,
and run slots long enough to name the deal ("o:<deal id>", "a:<deal id>"), so runs once means
once per (contact, deal) under the same unique (automation, contact, slot) index

Revision ID: 0024
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrolments") as batch:
        batch.add_column(sa.Column("deal_id", sa.BigInteger(), nullable=True))
        batch.alter_column(
            "run_slot",
            existing_type=sa.String(length=10),
            type_=sa.String(length=24),
            existing_nullable=True,
        )


def downgrade() -> None:
    # Deal runs' slots do not fit the old width: they end as plain runs of their contact.
    op.execute("DELETE FROM enrolments WHERE deal_id IS NOT NULL AND run_slot LIKE '_:%'")
    with op.batch_alter_table("enrolments") as batch:
        batch.alter_column(
            "run_slot",
            existing_type=sa.String(length=24),
            type_=sa.String(length=10),
            existing_nullable=True,
        )
        batch.drop_column("deal_id")
