"""contacts searchable by any part of an address or name through an index; the deals board
filtered by owner from an index; contacts by status kept in a ledger by triggers

Revision ID: 0027
Revises: 0026

The search index is schema the models do not describe (tidings.db.extras lists it, so the
migrated schema still compares equal to the models):

- PostgreSQL: trigram GIN indexes (pg_trgm) on the address and the lower-cased names, which
  serve `LIKE '%text%'`. Where the extension cannot be created (a managed server without the
  right), the indexes are left out with a warning: search still works, by a scan.
- SQLite: an FTS5 table with the trigram tokenizer over the address and names (its own copy,
  under the contact id), kept by triggers. A later migration that rebuilds the contacts table
  (batch_alter_table copies it) drops the triggers and must create them again
  (tidings.db.extras.create_contact_search).

The status ledger's triggers (tidings.contacts.status_counts) are schema too; the same
applies to them (status_counts.create_triggers).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tidings.contacts import status_counts
from tidings.db import extras

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_deals_board_owner",
        "deals",
        ["pipeline_id", "status", "owner_id", "stage_id", "position", "id", "currency", "value"],
    )
    extras.create_contact_search(op.get_bind())
    op.create_table(
        "contact_status_counts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_contact_status_counts_status_id", "contact_status_counts", ["status", "id"])
    status_counts.create_triggers(op.get_bind())


def downgrade() -> None:
    status_counts.drop_triggers(op.get_bind())
    op.drop_index("ix_contact_status_counts_status_id", table_name="contact_status_counts")
    op.drop_table("contact_status_counts")
    extras.drop_contact_search(op.get_bind())
    op.drop_index("ix_deals_board_owner", table_name="deals")
