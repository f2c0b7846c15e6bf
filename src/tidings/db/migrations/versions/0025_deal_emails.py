"""1:1 deal email (issue 15): deal_emails and their replies; deal score matches by start time
(for expiry); stage totals per expected close month too (the forecast reads them)

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tidings.db.types

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def _month(dialect: str) -> str:
    if dialect == "postgresql":
        return "coalesce(to_char(expected_close, 'YYYY-MM'), '')"
    return "coalesce(substr(expected_close, 1, 7), '')"


def _stage_totals(with_month: bool) -> None:
    """deal_stage_totals recreated with (or without) the close month in its key, recounted
    from the deals."""
    op.drop_table("deal_stage_totals")
    key = ["pipeline_id", "stage_id", "status", "currency"] + (
        ["close_month"] if with_month else []
    )
    month = [sa.Column("close_month", sa.String(length=7), nullable=False)] if with_month else []
    op.create_table(
        "deal_stage_totals",
        sa.Column("pipeline_id", sa.BigInteger(), nullable=False),
        sa.Column("stage_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        *month,
        sa.Column("deals", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*key, name=op.f("pk_deal_stage_totals")),
    )
    groups = ", ".join(key[:4] + ([_month(op.get_bind().dialect.name)] if with_month else []))
    op.execute(
        f"INSERT INTO deal_stage_totals ({', '.join(key)}, deals, value) "
        f"SELECT {groups}, count(*), sum(value) FROM deals GROUP BY {groups}"
    )


def upgrade() -> None:
    _stage_totals(with_month=True)
    op.create_table(
        "deal_emails",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("deal_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=True),
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("message_token", sa.String(length=64), nullable=False),
        sa.Column("to_email", sa.String(length=320), nullable=False),
        sa.Column("from_address", sa.String(length=600), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("automation_id", sa.BigInteger(), nullable=True),
        sa.Column("automate_on", sa.String(length=8), nullable=True),
        sa.Column("created_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_deal_emails_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_deal_emails_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_emails")),
        sa.UniqueConstraint("message_token", name=op.f("uq_deal_emails_message_token")),
    )
    with op.batch_alter_table("deal_emails", schema=None) as batch_op:
        batch_op.create_index("ix_deal_emails_deal_id_id", ["deal_id", "id"], unique=False)

    op.create_table(
        "deal_email_replies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("deal_email_id", sa.BigInteger(), nullable=False),
        sa.Column("deal_id", sa.BigInteger(), nullable=False),
        sa.Column("from_address", sa.String(length=600), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=True),
        sa.Column("received_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deal_email_id"],
            ["deal_emails.id"],
            name=op.f("fk_deal_email_replies_deal_email_id_deal_emails"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_email_replies")),
        sa.UniqueConstraint(
            "deal_email_id",
            "message_id",
            name=op.f("uq_deal_email_replies_deal_email_id"),
        ),
    )
    with op.batch_alter_table("deal_email_replies", schema=None) as batch_op:
        batch_op.create_index("ix_deal_email_replies_deal_id", ["deal_id"], unique=False)

    with op.batch_alter_table("deal_score_matches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deal_score_matches_rule_id_matched_at", ["rule_id", "matched_at"], unique=False
        )


def downgrade() -> None:
    _stage_totals(with_month=False)
    with op.batch_alter_table("deal_score_matches", schema=None) as batch_op:
        batch_op.drop_index("ix_deal_score_matches_rule_id_matched_at")
    with op.batch_alter_table("deal_email_replies", schema=None) as batch_op:
        batch_op.drop_index("ix_deal_email_replies_deal_id")
    op.drop_table("deal_email_replies")
    with op.batch_alter_table("deal_emails", schema=None) as batch_op:
        batch_op.drop_index("ix_deal_emails_deal_id_id")
    op.drop_table("deal_emails")
