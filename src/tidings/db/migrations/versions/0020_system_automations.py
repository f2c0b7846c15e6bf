"""system automations (issue 16): ticks (exactly-once starts) and runs; coupon pools

Revision ID: 0020
Revises: 0025
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tidings.db.types

revision = "0020"
down_revision = "0025"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, tidings.db.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "system_ticks",
        sa.Column("id", ID, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("automation_id", sa.BigInteger(), nullable=False),
        _time("due_at"),
        sa.Column("status", sa.String(length=16), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_ticks")),
        sa.UniqueConstraint("key", name=op.f("uq_system_ticks_key")),
    )
    op.create_index("ix_system_ticks_automation_due", "system_ticks", ["automation_id", "due_at"])
    op.create_table(
        "system_runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("automation_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tick_key", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=100), nullable=True),
        _time("wake_at"),
        _time("lease_until", nullable=True),
        sa.Column("last_job", JSON, nullable=True),
        sa.Column("log", JSON, nullable=False),
        _time("started_at"),
        _time("ended_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_runs")),
        sa.UniqueConstraint("tick_key", name=op.f("uq_system_runs_tick_key")),
    )
    op.create_index("ix_system_runs_state_wake", "system_runs", ["state", "wake_at"])
    op.create_table(
        "coupon_pools",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("low_stock", sa.Integer(), nullable=False),
        sa.Column("shortage", sa.BigInteger(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_pools")),
        sa.UniqueConstraint("name", name=op.f("uq_coupon_pools_name")),
    )
    op.create_table(
        "coupon_codes",
        sa.Column("id", ID, nullable=False),
        sa.Column("pool_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=200), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=True),
        _time("assigned_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_codes")),
        sa.UniqueConstraint("pool_id", "code", name="uq_coupon_codes_pool_code"),
        sa.UniqueConstraint("pool_id", "contact_id", name="uq_coupon_codes_pool_contact"),
    )
    op.create_index("ix_coupon_codes_free", "coupon_codes", ["pool_id", "contact_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_coupon_codes_free", table_name="coupon_codes")
    op.drop_table("coupon_codes")
    op.drop_table("coupon_pools")
    op.drop_index("ix_system_runs_state_wake", table_name="system_runs")
    op.drop_table("system_runs")
    op.drop_index("ix_system_ticks_automation_due", table_name="system_ticks")
    op.drop_table("system_ticks")
