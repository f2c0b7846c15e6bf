"""automations, enrolments and the engine (issue 4)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tidings.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _ts() -> tidings.db.types.UTCDateTime:
    return tidings.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "automations",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automations")),
        sa.UniqueConstraint("name", name=op.f("uq_automations_name")),
    )
    op.create_table(
        "automation_versions",
        sa.Column("id", ID, nullable=False),
        sa.Column("automation_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["automation_id"],
            ["automations.id"],
            name=op.f("fk_automation_versions_automation_id_automations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_versions")),
        sa.UniqueConstraint(
            "automation_id", "version", name=op.f("uq_automation_versions_automation_id")
        ),
    )
    op.create_table(
        "enrolments",
        sa.Column("id", ID, nullable=False),
        sa.Column("automation_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("step", sa.String(length=100), nullable=True),
        sa.Column("wake_at", _ts(), nullable=True),
        sa.Column("wait_until", _ts(), nullable=True),
        sa.Column("hops", sa.Integer(), nullable=False),
        sa.Column("goals_hit", JSON, nullable=False),
        sa.Column("run_key", sa.String(length=100), nullable=True),
        sa.Column("entered_at", _ts(), nullable=False),
        sa.Column("ended_at", _ts(), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolments")),
        sa.UniqueConstraint("run_key", name=op.f("uq_enrolments_run_key")),
    )
    op.create_index("ix_enrolments_state_wake_at", "enrolments", ["state", "wake_at"])
    op.create_index(
        "ix_enrolments_contact_id_automation_id", "enrolments", ["contact_id", "automation_id"]
    )
    op.create_index(
        "ix_enrolments_automation_id_state_step", "enrolments", ["automation_id", "state", "step"]
    )
    op.create_table(
        "automation_step_log",
        sa.Column("id", ID, nullable=False),
        sa.Column("enrolment_id", sa.BigInteger(), nullable=False),
        sa.Column("automation_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_step_log")),
    )
    op.create_index(
        "ix_automation_step_log_automation_id_step",
        "automation_step_log",
        ["automation_id", "step", "outcome"],
    )
    op.create_index("ix_automation_step_log_enrolment_id", "automation_step_log", ["enrolment_id"])
    op.create_table(
        "automation_engine_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", JSON, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_automation_engine_state")),
    )
    op.create_table(
        "automation_effects",
        sa.Column("id", ID, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("enrolment_id", sa.BigInteger(), nullable=True),
        sa.Column("contact_id", sa.BigInteger(), nullable=True),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _ts(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_effects")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_automation_effects_idempotency_key")),
    )
    op.create_index(
        "ix_automation_effects_status_next_attempt_at",
        "automation_effects",
        ["status", "next_attempt_at"],
    )


def downgrade() -> None:
    op.drop_table("automation_effects")
    op.drop_table("automation_engine_state")
    op.drop_table("automation_step_log")
    op.drop_table("enrolments")
    op.drop_table("automation_versions")
    op.drop_table("automations")
