"""enrolments: the unique run-slot index leads with the automation and replaces the
automation index (issue 4, step rate)

Every new, moved or ended run wrote an entry into both; now one index serves the run-once
rule, an automation's runs, and a contact's runs (looked up with every automation id in front).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD = "uq_enrolments_contact_id_automation_id_run_slot"
NEW = "uq_enrolments_automation_id_contact_id_run_slot"


def upgrade() -> None:
    op.create_index(NEW, "enrolments", ["automation_id", "contact_id", "run_slot"], unique=True)
    op.drop_index(OLD, table_name="enrolments")
    op.drop_index("ix_enrolments_automation_id", table_name="enrolments")


def downgrade() -> None:
    op.create_index("ix_enrolments_automation_id", "enrolments", ["automation_id"])
    op.create_index(OLD, "enrolments", ["contact_id", "automation_id", "run_slot"], unique=True)
    op.drop_index(NEW, table_name="enrolments")
