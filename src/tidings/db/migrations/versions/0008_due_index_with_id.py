"""enrolments: the due index holds (wake_at, id), the claim's order (issue 4, step rate)

On wake_at alone, PostgreSQL had to read every run due at the same moment (a day boundary
wakes tens of thousands together) and sort them by id to hand out each batch of 1,000.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ACTIVE_ONLY: dict[str, Any] = {
    "sqlite_where": sa.text("state = 'active'"),
    "postgresql_where": sa.text("state = 'active'"),
}


def _due_index(columns: list[str]) -> None:
    op.drop_index("ix_enrolments_due", table_name="enrolments")
    op.create_index("ix_enrolments_due", "enrolments", columns, **ACTIVE_ONLY)


def upgrade() -> None:
    _due_index(["wake_at", "id"])


def downgrade() -> None:
    _due_index(["wake_at"])
