"""signing keys in the database, shared by every process; SQLite never reuses the id of a
deleted contact or list (issue 13)

The secret that signs links lived in a file in each process's working directory, so a worker
started elsewhere signed links the API could not verify. It now lives in `signing_keys`. The
first key is the one a previous version kept in its secret file (TIDINGS_SECRET_FILE, handed
in by `tidings db upgrade` and `tidings serve`), so links in mail already sent keep working;
without such a file a new key is generated.

Contact and list ids are in unsubscribe, preference and tracking links. Without AUTOINCREMENT
SQLite gives a new row the largest id + 1, so deleting the newest contact handed its id, and
its old links, to the next one. SQLite can only add AUTOINCREMENT by rebuilding the table
(PostgreSQL's sequences never hand an id out twice).

Revision ID: 0014
Revises: 0009
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

import tidings.db.types

revision = "0014"
down_revision = "0009"
branch_labels = None
depends_on = None

KEPT_IDS = ("contacts", "lists")


def _first_key() -> str:
    path = context.config.attributes.get("secret_file")
    if path is not None and Path(path).is_file():
        key = Path(path).read_text().strip()
        if key:
            return key
    return secrets.token_urlsafe(48)


def _autoincrement(on: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in KEPT_IDS:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": on}
        ):
            pass


def upgrade() -> None:
    keys = op.create_table(
        "signing_keys",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("created_at", tidings.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
    )
    op.bulk_insert(keys, [{"id": 1, "key": _first_key(), "created_at": datetime.now(UTC)}])
    _autoincrement(True)


def downgrade() -> None:
    _autoincrement(False)
    op.drop_table("signing_keys")
