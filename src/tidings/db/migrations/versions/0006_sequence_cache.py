"""PostgreSQL: the id sequences of enrolments and their history rows hand each connection
1,000 ids at a time (issue 4, step rate)

Without a cache every nextval() locks the sequence and every 32nd writes WAL; the engine
reserves the ids of the runs it starts and COPY takes one per history row, so at a million
rows that is seconds. Ids stay unique but no longer follow time across connections (each
uses its own block, and skips the rest of it when it closes): nothing orders these two
tables by id alone. Activities keep a cache of 1: the engine reads them in id order.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("enrolments", "automation_step_log")
CACHE = 1000


def _set_cache(cache: int) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no sequences: a new row takes max(rowid) + 1
    for table in TABLES:
        op.execute(f"ALTER SEQUENCE {table}_id_seq CACHE {cache}")


def upgrade() -> None:
    _set_cache(CACHE)


def downgrade() -> None:
    _set_cache(1)
