"""engine: partial indexes on active enrolments, one step-log row per enrolment and batch,
per-step outcome counts, run slots (issue 4, step rate)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ACTIVE_ONLY: dict[str, Any] = {
    "sqlite_where": sa.text("state = 'active'"),
    "postgresql_where": sa.text("state = 'active'"),
}


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "automation_step_counts",
        sa.Column("automation_id", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "automation_id", "step", "outcome", "shard", name=op.f("pk_automation_step_counts")
        ),
    )
    op.execute(
        "INSERT INTO automation_step_counts (automation_id, step, outcome, shard, count) "
        "SELECT automation_id, step, outcome, 0, count(*) FROM automation_step_log "
        "GROUP BY automation_id, step, outcome"
    )
    # Each old row becomes a row of one step.
    op.add_column("automation_step_log", sa.Column("steps", JSON, nullable=True))
    array = "json_array" if sqlite else "jsonb_build_array"
    op.execute(f"UPDATE automation_step_log SET steps = {array}({array}(step, outcome, detail))")
    op.drop_index("ix_automation_step_log_automation_id_step", table_name="automation_step_log")
    with op.batch_alter_table("automation_step_log") as batch:
        batch.drop_column("step")
        batch.drop_column("outcome")
        batch.drop_column("detail")
        batch.alter_column("steps", existing_type=JSON, nullable=False)

    _run_keys_to_slots()
    op.drop_index("ix_enrolments_state_wake_at", table_name="enrolments")
    op.drop_index("ix_enrolments_automation_id_state_step", table_name="enrolments")
    op.create_index("ix_enrolments_due", "enrolments", ["wake_at"], **ACTIVE_ONLY)
    op.create_index("ix_enrolments_waiting", "enrolments", ["automation_id", "step"], **ACTIVE_ONLY)
    op.create_index("ix_enrolments_automation_id", "enrolments", ["automation_id"])


def _run_keys_to_slots() -> None:
    """run_key "automation:contact[:active]" (unique) becomes run_slot once|active|NULL under a
    unique (contact, automation, slot) index, which also replaces the contact index."""
    op.add_column("enrolments", sa.Column("run_slot", sa.String(length=10), nullable=True))
    op.execute(  # "\\:" keeps text() from reading ":active" as a parameter
        "UPDATE enrolments SET run_slot = CASE WHEN run_key LIKE '%\\:active' THEN 'active' "
        "WHEN run_key IS NOT NULL THEN 'once' END"
    )
    op.drop_index("ix_enrolments_contact_id_automation_id", table_name="enrolments")
    with op.batch_alter_table("enrolments") as batch:
        batch.drop_constraint("uq_enrolments_run_key", type_="unique")
        batch.drop_column("run_key")
    op.create_index(
        "uq_enrolments_contact_id_automation_id_run_slot",
        "enrolments",
        ["contact_id", "automation_id", "run_slot"],
        unique=True,
    )


def _run_slots_to_keys() -> None:
    op.add_column("enrolments", sa.Column("run_key", sa.String(length=100), nullable=True))
    op.execute(
        "UPDATE enrolments SET run_key = CAST(automation_id AS TEXT) || '\\:' || "
        "CAST(contact_id AS TEXT) || CASE WHEN run_slot = 'active' THEN '\\:active' ELSE '' END "
        "WHERE run_slot IS NOT NULL"
    )
    op.drop_index("uq_enrolments_contact_id_automation_id_run_slot", table_name="enrolments")
    with op.batch_alter_table("enrolments") as batch:
        batch.drop_column("run_slot")
        batch.create_unique_constraint("uq_enrolments_run_key", ["run_key"])
    op.create_index(
        "ix_enrolments_contact_id_automation_id", "enrolments", ["contact_id", "automation_id"]
    )


def downgrade() -> None:
    _run_slots_to_keys()
    op.drop_index("ix_enrolments_automation_id", table_name="enrolments")
    op.drop_index("ix_enrolments_waiting", table_name="enrolments")
    op.drop_index("ix_enrolments_due", table_name="enrolments")
    op.create_index(
        "ix_enrolments_automation_id_state_step", "enrolments", ["automation_id", "state", "step"]
    )
    op.create_index("ix_enrolments_state_wake_at", "enrolments", ["state", "wake_at"])
    # Multi-step rows keep their first step only.
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("automation_step_log") as batch:
        batch.add_column(sa.Column("step", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("detail", sa.Text(), nullable=True))
    if sqlite:
        op.execute(
            "UPDATE automation_step_log SET step = json_extract(steps, '$[0][0]'), "
            "outcome = json_extract(steps, '$[0][1]'), detail = json_extract(steps, '$[0][2]')"
        )
    else:
        op.execute(
            "UPDATE automation_step_log SET step = steps -> 0 ->> 0, "
            "outcome = steps -> 0 ->> 1, detail = steps -> 0 ->> 2"
        )
    with op.batch_alter_table("automation_step_log") as batch:
        batch.drop_column("steps")
        batch.alter_column("step", existing_type=sa.String(length=100), nullable=False)
        batch.alter_column("outcome", existing_type=sa.String(length=20), nullable=False)
    op.create_index(
        "ix_automation_step_log_automation_id_step",
        "automation_step_log",
        ["automation_id", "step", "outcome"],
    )
    op.drop_table("automation_step_counts")
