"""events, engagement summary and segments (issue 3)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tidings.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SUMMARY_TIMES = ("last_open_at", "last_click_at", "last_purchase_at", "last_visit_at")
SUMMARY_COUNTS = ("open_count", "click_count", "purchase_count", "visit_count")


def upgrade() -> None:
    with op.batch_alter_table("activities", schema=None) as batch_op:
        # Idempotency key of an ingested event: NULLs never collide, so only keyed events are
        # deduplicated.
        batch_op.add_column(sa.Column("event_id", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("machine", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_unique_constraint(batch_op.f("uq_activities_event_id"), ["event_id"])
        # The one index for event queries. Segment conditions ask "which contacts had an event of
        # these types in this time window" for ALL contacts at once; this index answers that with
        # an index-only range scan (type equality, occurred_at range, then machine and contact_id
        # read from the index, no table lookups). The same range serves `events prune`
        # (type, occurred_at < cutoff) and per-day reports. Per-contact questions (timeline,
        # automation checks) use ix_activities_contact_id_id from 0001.
        batch_op.create_index(
            "ix_activities_type_occurred_at",
            ["type", "occurred_at", "machine", "contact_id"],
            unique=False,
        )

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        for name in (*SUMMARY_TIMES, "last_engaged_at"):
            batch_op.add_column(
                sa.Column(name, tidings.db.types.UTCDateTime(timezone=True), nullable=True)
            )
        for name in SUMMARY_COUNTS:
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("purchase_total_minor", sa.BigInteger(), server_default="0", nullable=False)
        )

    op.create_table(
        "event_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("machine_events", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "type", name=op.f("pk_event_daily")),
    )
    op.create_table(
        "segments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "condition",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("name", name=op.f("uq_segments_name")),
    )


def downgrade() -> None:
    op.drop_table("segments")
    op.drop_table("event_daily")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        for name in ("purchase_total_minor", *SUMMARY_COUNTS, "last_engaged_at", *SUMMARY_TIMES):
            batch_op.drop_column(name)
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_index("ix_activities_type_occurred_at")
        batch_op.drop_constraint(batch_op.f("uq_activities_event_id"), type_="unique")
        batch_op.drop_column("machine")
        batch_op.drop_column("event_id")
