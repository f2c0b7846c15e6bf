"""contact_tags: no foreign keys (issue 4, step rate)

The busiest join table: PostgreSQL checked each new row's keys by locking the contact's and the
tag's row (a WAL record each; one hot tag row locked by every worker). Deleting a contact or a
tag now deletes its contact_tags rows itself (contacts.service).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

KEYS = (
    ("fk_contact_tags_contact_id_contacts", "contacts", "contact_id"),
    ("fk_contact_tags_tag_id_tags", "tags", "tag_id"),
)


def upgrade() -> None:
    with op.batch_alter_table("contact_tags") as batch:  # SQLite: the table is rebuilt
        for name, _, _ in KEYS:
            batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    for _, parent, column in KEYS:  # rows a race left behind would fail the keys
        op.execute(
            f"DELETE FROM contact_tags WHERE NOT EXISTS "
            f"(SELECT 1 FROM {parent} WHERE {parent}.id = contact_tags.{column})"
        )
    with op.batch_alter_table("contact_tags") as batch:
        for name, parent, column in KEYS:
            batch.create_foreign_key(name, parent, [column], ["id"], ondelete="CASCADE")
