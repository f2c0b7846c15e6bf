"""coupon pools: who is told when stock runs low, and when it was (once)

Revision ID: 0026
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tidings.db.types

revision = "0026"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("coupon_pools") as batch:
        batch.add_column(sa.Column("low_stock_notify", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("low_stock_at", tidings.db.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("coupon_pools") as batch:
        batch.drop_column("low_stock_at")
        batch.drop_column("low_stock_notify")
