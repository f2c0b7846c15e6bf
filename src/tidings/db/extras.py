"""Schema the models do not describe: the contacts' search index (migration 0027).

Searching contacts by any part of an address or name (`LIKE '%text%'`) needs an index of
trigrams, which each database spells its own way:

- PostgreSQL: GIN indexes with pg_trgm's operator class on the address and the lower-cased
  names; the planner uses them for the same `LIKE` the app writes on both databases.
- SQLite: an FTS5 table with the trigram tokenizer (SQLite ≥ 3.34) holding a copy of each
  contact's address and names, kept by triggers on delete and on a change of address or name
  (the engagement summary's UPDATEs, which change neither, do not touch it); new contacts are
  added by the code that inserts them (tidings.contacts.search.index_new), a batch at a time.
  The table keeps its own copy rather than reading `contacts` (an external-content table):
  removing a row it never indexed (a contact inserted by SQL of its own) is then a no-op,
  where an external-content table reports itself corrupt.

`include_name` / `include_object` leave these out of the model-to-database comparison
(tests/db/test_migrations.py, alembic autogenerate).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

SEARCH_TABLE = "contact_search"  # SQLite (with FTS5's shadow tables contact_search_*)
SEARCH_INDEX_PREFIX = "ix_contacts_search_"  # PostgreSQL
_POSTGRES_SEARCH_INDEXES = {
    "ix_contacts_search_email": "email",
    "ix_contacts_search_first_name": "lower(first_name)",
    "ix_contacts_search_last_name": "lower(last_name)",
}
_COLUMNS = "email, first_name, last_name"
_NEW = "new.id, new.email, new.first_name, new.last_name"
_FORGET = f"DELETE FROM {SEARCH_TABLE} WHERE rowid = old.id;"
# Inserted contacts are added by tidings.contacts.search.index_new, in one statement per
# batch: a trigger per row made imports 2.2 times slower.
_SQLITE_TRIGGERS = {
    "contact_search_delete": f"AFTER DELETE ON contacts BEGIN {_FORGET} END",
    "contact_search_update": (
        "AFTER UPDATE OF email, first_name, last_name ON contacts "
        "WHEN old.email IS NOT new.email OR old.first_name IS NOT new.first_name "
        f"OR old.last_name IS NOT new.last_name BEGIN {_FORGET} "
        f"INSERT INTO {SEARCH_TABLE} (rowid, {_COLUMNS}) VALUES ({_NEW}); END"
    ),
}


def create_contact_search(connection: Connection) -> None:
    """Create the search index over the contacts already there (a migration's step)."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(
            f"CREATE VIRTUAL TABLE {SEARCH_TABLE} USING fts5({_COLUMNS}, tokenize='trigram')"
        )
        index_all_contacts(connection)
        create_contact_search_triggers(connection)
        return
    if not _create_pg_trgm(connection):
        return
    for name, expression in _POSTGRES_SEARCH_INDEXES.items():
        connection.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS {name} ON contacts USING gin ({expression} gin_trgm_ops)"
        )


def index_all_contacts(connection: Connection) -> None:
    """SQLite: (re)fill the search table from every contact (the migration; a benchmark that
    inserts contacts by SQL of its own)."""
    connection.exec_driver_sql(f"DELETE FROM {SEARCH_TABLE}")
    connection.exec_driver_sql(
        f"INSERT INTO {SEARCH_TABLE} (rowid, {_COLUMNS}) SELECT id, {_COLUMNS} FROM contacts"
    )


def create_contact_search_triggers(connection: Connection) -> None:
    """SQLite: the triggers that keep the search table current. A migration that rebuilds
    the contacts table (batch_alter_table) loses them and calls this again."""
    for name, body in _SQLITE_TRIGGERS.items():
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        connection.exec_driver_sql(f"CREATE TRIGGER {name} {body}")


def drop_contact_search(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        for name in _SQLITE_TRIGGERS:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {SEARCH_TABLE}")
        return
    for name in _POSTGRES_SEARCH_INDEXES:
        connection.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")


def _create_pg_trgm(connection: Connection) -> bool:
    """Whether pg_trgm is there (created now if need be). A server where this role may not
    create it still runs Tidings: searches then scan the contacts instead of an index."""
    try:
        with connection.begin_nested():
            connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DBAPIError as exc:
        log.warning(
            "pg_trgm could not be created (%s): contact search will scan instead of using "
            "an index (docs/web.md, Searching contacts, says how to add it later)",
            exc.orig,
        )
        return False
    return True


def include_name(name: str | None, type_: str, _parents: Any) -> bool:
    """Alembic's filter of reflected names: not the search table and its shadow tables."""
    return not (type_ == "table" and name is not None and name.startswith(SEARCH_TABLE))


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's filter of schema objects: not the PostgreSQL search indexes."""
    search_index = type_ == "index" and name is not None and name.startswith(SEARCH_INDEX_PREFIX)
    return not (reflected and compare_to is None and search_index)
