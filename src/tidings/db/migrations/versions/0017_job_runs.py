"""jobs (issue 16): job runs, drop-folder files imported, the hygiene audit

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tidings.db.types

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, tidings.db.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "job_hygiene_audit",
        sa.Column("id", ID, nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("contacts", sa.BigInteger(), nullable=False),
        _time("at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_hygiene_audit")),
    )
    op.create_table(
        "job_imported_files",
        sa.Column("id", ID, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _time("created_at"),
        _time("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_imported_files")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_job_imported_files_content_hash")),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("automation_id", sa.BigInteger(), nullable=True),
        sa.Column("automation_version", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("trigger_key", sa.String(length=200), nullable=True),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _time("created_at"),
        _time("started_at", nullable=True),
        _time("finished_at", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        _time("lease_until", nullable=True),
        sa.Column("rows_read", sa.BigInteger(), nullable=False),
        sa.Column("rows_written", sa.BigInteger(), nullable=False),
        sa.Column("rows_rejected", sa.BigInteger(), nullable=False),
        sa.Column("rows_skipped", sa.BigInteger(), nullable=False),
        sa.Column("progress_done", sa.BigInteger(), nullable=False),
        sa.Column("progress_total", sa.BigInteger(), nullable=True),
        sa.Column("errors", JSON, nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("output_file", sa.String(length=500), nullable=True),
        sa.Column("state", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
        sa.UniqueConstraint("trigger_key", name=op.f("uq_job_runs_trigger_key")),
    )
    op.create_index("ix_job_runs_created_at", "job_runs", ["created_at"], unique=False)
    op.create_index("ix_job_runs_kind_id", "job_runs", ["kind", "id"], unique=False)
    op.create_index("ix_job_runs_status_id", "job_runs", ["status", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_runs_status_id", table_name="job_runs")
    op.drop_index("ix_job_runs_kind_id", table_name="job_runs")
    op.drop_index("ix_job_runs_created_at", table_name="job_runs")
    op.drop_table("job_runs")
    op.drop_table("job_imported_files")
    op.drop_table("job_hygiene_audit")
