"""deal_stage_reach: per deal and pipeline, when it entered and the furthest stage reached
(the funnel counts these instead of grouping every stage visit), filled from the visits

Revision ID: 0022
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tidings.db.types

revision = "0022"
down_revision = "0020"
branch_labels = None
depends_on = None

# Per (pipeline, deal): the first entry and the visited stage latest in the stage order
# (position, then id; visits of deleted stages rank below every stage).
FILL = """
INSERT INTO deal_stage_reach (pipeline_id, deal_id, entered_at, furthest_stage_id)
SELECT pipeline_id, deal_id, entered_at, stage_id FROM (
    SELECT v.pipeline_id, v.deal_id, v.stage_id,
        min(v.entered_at) OVER (PARTITION BY v.pipeline_id, v.deal_id) AS entered_at,
        row_number() OVER (
            PARTITION BY v.pipeline_id, v.deal_id
            ORDER BY coalesce(s.position, -1) DESC, v.stage_id DESC
        ) AS rank
    FROM deal_stage_visits v
    LEFT JOIN stages s ON s.id = v.stage_id AND s.pipeline_id = v.pipeline_id
) ranked
WHERE rank = 1
"""


def upgrade() -> None:
    op.create_table(
        "deal_stage_reach",
        sa.Column("pipeline_id", sa.BigInteger(), nullable=False),
        sa.Column("deal_id", sa.BigInteger(), nullable=False),
        sa.Column("entered_at", tidings.db.types.UTCDateTime(), nullable=False),
        sa.Column("furthest_stage_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pipeline_id", "deal_id", name=op.f("pk_deal_stage_reach")),
    )
    op.create_index(
        "ix_deal_stage_reach_funnel",
        "deal_stage_reach",
        ["pipeline_id", "furthest_stage_id", "entered_at"],
        unique=False,
    )
    op.execute(FILL)


def downgrade() -> None:
    op.drop_index("ix_deal_stage_reach_funnel", table_name="deal_stage_reach")
    op.drop_table("deal_stage_reach")
