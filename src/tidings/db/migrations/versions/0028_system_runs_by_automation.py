"""system runs: found by their automation (its page, its last run, its runs per state)

Revision ID: 0028
Revises: 0027
"""

from __future__ import annotations

from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_system_runs_automation_id", "system_runs", ["automation_id", "id"])
    op.create_index("ix_system_runs_automation_state", "system_runs", ["automation_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_system_runs_automation_state", table_name="system_runs")
    op.drop_index("ix_system_runs_automation_id", table_name="system_runs")
