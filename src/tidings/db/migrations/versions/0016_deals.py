"""deals CRM (issue 15): users, pipelines, stages, deals, deal contacts and fields, stage
visits, tasks and task types, notes, deal scoring; activities carry a deal id

Revision ID: 0016
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tidings.db.types

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deal_fields",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column(
            "options",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_fields")),
        sa.UniqueConstraint("key", name=op.f("uq_deal_fields_key")),
    )
    op.create_table(
        "deal_score_matches",
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("deal_id", sa.BigInteger(), nullable=False),
        sa.Column("matched_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("holds", sa.Boolean(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", "deal_id", name=op.f("pk_deal_score_matches")),
    )
    with op.batch_alter_table("deal_score_matches", schema=None) as batch_op:
        batch_op.create_index("ix_deal_score_matches_deal_id", ["deal_id"], unique=False)

    op.create_table(
        "deal_scoring_rules",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "condition",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("expires_after_days", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_scoring_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_deal_scoring_rules_name")),
    )
    op.create_table(
        "deal_stage_totals",
        sa.Column("pipeline_id", sa.BigInteger(), nullable=False),
        sa.Column("stage_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("deals", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "pipeline_id", "stage_id", "status", "currency", name=op.f("pk_deal_stage_totals")
        ),
    )
    op.create_table(
        "deal_stage_visits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("deal_id", sa.BigInteger(), nullable=False),
        sa.Column("pipeline_id", sa.BigInteger(), nullable=False),
        sa.Column("stage_id", sa.BigInteger(), nullable=False),
        sa.Column("entered_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("left_at", tidings.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_stage_visits")),
    )
    with op.batch_alter_table("deal_stage_visits", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deal_stage_visits_deal_id_left_at", ["deal_id", "left_at"], unique=False
        )
        batch_op.create_index(
            "ix_deal_stage_visits_pipeline",
            ["pipeline_id", "deal_id", "stage_id", "entered_at"],
            unique=False,
        )

    op.create_table(
        "pipelines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipelines")),
        sa.UniqueConstraint("name", name=op.f("uq_pipelines_name")),
    )
    op.create_table(
        "task_types",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_types")),
        sa.UniqueConstraint("name", name=op.f("uq_task_types_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("created_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "stages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pipeline_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("colour", sa.String(length=7), nullable=False),
        sa.Column("probability", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_stages_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stages")),
        sa.UniqueConstraint("pipeline_id", "title", name=op.f("uq_stages_pipeline_id")),
    )
    op.create_table(
        "deals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=True),
        sa.Column("owner_id", sa.BigInteger(), nullable=True),
        sa.Column("pipeline_id", sa.BigInteger(), nullable=False),
        sa.Column("stage_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", tidings.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lost_reason", sa.Text(), nullable=True),
        sa.Column("expected_close", sa.Date(), nullable=True),
        sa.Column(
            "fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("created_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_deals_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_deals_owner_id_users")),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["pipelines.id"], name=op.f("fk_deals_pipeline_id_pipelines")
        ),
        sa.ForeignKeyConstraint(["stage_id"], ["stages.id"], name=op.f("fk_deals_stage_id_stages")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deals")),
    )
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deals_board",
            [
                "pipeline_id",
                "status",
                "stage_id",
                "position",
                "id",
                "currency",
                "value",
                "expected_close",
            ],
            unique=False,
        )
        batch_op.create_index("ix_deals_closed_at", ["closed_at"], unique=False)
        batch_op.create_index("ix_deals_contact_id", ["contact_id"], unique=False)
        batch_op.create_index("ix_deals_owner_id_status", ["owner_id", "status"], unique=False)
        batch_op.create_index("ix_deals_updated_at", ["updated_at"], unique=False)

    op.create_table(
        "deal_contacts",
        sa.Column("deal_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_deal_contacts_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"],
            ["deals.id"],
            name=op.f("fk_deal_contacts_deal_id_deals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("deal_id", "contact_id", name=op.f("pk_deal_contacts")),
    )
    with op.batch_alter_table("deal_contacts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deal_contacts_contact_id_deal_id", ["contact_id", "deal_id"], unique=False
        )

    op.create_table(
        "notes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=True),
        sa.Column("deal_id", sa.BigInteger(), nullable=True),
        sa.Column("contact_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(deal_id IS NULL) <> (contact_id IS NULL)", name=op.f("ck_notes_on_deal_or_contact")
        ),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_notes_author_id_users")),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_notes_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_notes_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes")),
    )
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.create_index("ix_notes_contact_id", ["contact_id"], unique=False)
        batch_op.create_index("ix_notes_deal_id", ["deal_id"], unique=False)

    op.create_table(
        "tasks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("due_at", tidings.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("assignee_id", sa.BigInteger(), nullable=True),
        sa.Column("done_at", tidings.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deal_id", sa.BigInteger(), nullable=True),
        sa.Column("contact_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(deal_id IS NULL) <> (contact_id IS NULL)", name=op.f("ck_tasks_on_deal_or_contact")
        ),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["users.id"], name=op.f("fk_tasks_assignee_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_tasks_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_tasks_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tasks_assignee_id_done_at_due_at",
            ["assignee_id", "done_at", "due_at"],
            unique=False,
        )
        batch_op.create_index("ix_tasks_contact_id", ["contact_id"], unique=False)
        batch_op.create_index("ix_tasks_deal_id", ["deal_id"], unique=False)
        batch_op.create_index("ix_tasks_type", ["type"], unique=False)

    # A nullable column without a default: an ALTER on both databases, no table rebuild.
    op.add_column("activities", sa.Column("deal_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_activities_deal_id_id", "activities", ["deal_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_activities_deal_id_id", table_name="activities")
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_column("deal_id")

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_type")
        batch_op.drop_index("ix_tasks_deal_id")
        batch_op.drop_index("ix_tasks_contact_id")
        batch_op.drop_index("ix_tasks_assignee_id_done_at_due_at")

    op.drop_table("tasks")
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.drop_index("ix_notes_deal_id")
        batch_op.drop_index("ix_notes_contact_id")

    op.drop_table("notes")
    with op.batch_alter_table("deal_contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_deal_contacts_contact_id_deal_id")

    op.drop_table("deal_contacts")
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_index("ix_deals_updated_at")
        batch_op.drop_index("ix_deals_owner_id_status")
        batch_op.drop_index("ix_deals_contact_id")
        batch_op.drop_index("ix_deals_closed_at")
        batch_op.drop_index("ix_deals_board")

    op.drop_table("deals")
    op.drop_table("stages")
    op.drop_table("users")
    op.drop_table("task_types")
    op.drop_table("pipelines")
    with op.batch_alter_table("deal_stage_visits", schema=None) as batch_op:
        batch_op.drop_index("ix_deal_stage_visits_pipeline")
        batch_op.drop_index("ix_deal_stage_visits_deal_id_left_at")

    op.drop_table("deal_stage_visits")
    op.drop_table("deal_stage_totals")
    op.drop_table("deal_scoring_rules")
    with op.batch_alter_table("deal_score_matches", schema=None) as batch_op:
        batch_op.drop_index("ix_deal_score_matches_deal_id")

    op.drop_table("deal_score_matches")
    op.drop_table("deal_fields")
