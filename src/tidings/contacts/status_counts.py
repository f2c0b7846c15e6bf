"""Contacts by status, kept as they change (migration 0027), for the dashboard.

Counting 1,000,000 contacts by status on every view took 100 ms and more; the triggers made
here keep a ledger (`contact_status_counts`) that every insert, delete and change of status
adds to, whichever code path writes (upsert, import, unsubscribe, bounce, delete, hygiene,
erasure), and the dashboard sums it.

- SQLite (one writer at a time): row triggers add ±1 to the status's one row.
- PostgreSQL: writers must not queue on one counter row (nor deadlock over two), so the
  triggers only append rows: one per status per INSERT or DELETE statement (from its
  transition table), two per changed status. `fold` sums them back into one row per status:
  it deletes the rows it can see and writes their sum in one transaction, so a row another
  transaction has not committed yet stays, and is folded next time.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.orm import Session

from tidings.contacts.models import ContactStatusCount
from tidings.contacts.policy import ContactStatus
from tidings.db.dialect import dialect_of

FOLD_ABOVE = 200  # ledger rows beyond which a reader folds them (PostgreSQL)
_TABLE = "contact_status_counts"
# SQLite keeps exactly one row per status (made with the table, for every ContactStatus).
_SQLITE_ADD = f"UPDATE {_TABLE} SET n = n {{sign}} 1 WHERE status = {{row}}.status;"
_SQLITE_TRIGGERS = {
    "contact_status_insert": "AFTER INSERT ON contacts BEGIN "
    + _SQLITE_ADD.format(row="new", sign="+")
    + " END",
    "contact_status_delete": "AFTER DELETE ON contacts BEGIN "
    + _SQLITE_ADD.format(row="old", sign="-")
    + " END",
    "contact_status_update": "AFTER UPDATE OF status ON contacts "
    "WHEN old.status IS NOT new.status BEGIN "
    + _SQLITE_ADD.format(row="old", sign="-")
    + " "
    + _SQLITE_ADD.format(row="new", sign="+")
    + " END",
}
_POSTGRES_FUNCTIONS = {
    "contact_status_inserted": f"INSERT INTO {_TABLE} (status, n) "
    "SELECT status, count(*) FROM changed GROUP BY status",
    "contact_status_deleted": f"INSERT INTO {_TABLE} (status, n) "
    "SELECT status, -count(*) FROM changed GROUP BY status",
    "contact_status_changed": f"INSERT INTO {_TABLE} (status, n) "
    "VALUES (OLD.status, -1), (NEW.status, 1)",
}
_POSTGRES_TRIGGERS = {
    "contact_status_insert": "AFTER INSERT ON contacts REFERENCING NEW TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION contact_status_inserted()",
    "contact_status_delete": "AFTER DELETE ON contacts REFERENCING OLD TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION contact_status_deleted()",
    "contact_status_update": "AFTER UPDATE OF status ON contacts FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION contact_status_changed()",
}


def create_triggers(connection: Connection) -> None:
    """The triggers, and the ledger filled from the contacts there now (a migration's step;
    one that rebuilds the contacts table on SQLite loses the triggers and calls this again)."""
    drop_triggers(connection)
    if connection.dialect.name == "sqlite":
        for name, body in _SQLITE_TRIGGERS.items():
            connection.exec_driver_sql(f"CREATE TRIGGER {name} {body}")
    else:
        for name, body in _POSTGRES_FUNCTIONS.items():
            connection.exec_driver_sql(
                f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN {body}; RETURN NULL; END $$"
            )
        for name, body in _POSTGRES_TRIGGERS.items():
            connection.exec_driver_sql(f"CREATE TRIGGER {name} {body}")
    connection.exec_driver_sql(f"DELETE FROM {_TABLE}")
    grouped = connection.exec_driver_sql("SELECT status, count(*) FROM contacts GROUP BY status")
    counts: dict[str, int] = {str(status): int(n) for status, n in grouped}
    rows = [{"status": s, "n": counts.get(s, 0)} for s in sorted({*ContactStatus, *counts})]
    connection.execute(insert(ContactStatusCount), rows)


def drop_triggers(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    for name in _SQLITE_TRIGGERS:
        connection.exec_driver_sql(
            f"DROP TRIGGER IF EXISTS {name}" + ("" if sqlite else " ON contacts")
        )
    if not sqlite:
        for name in _POSTGRES_FUNCTIONS:
            connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}()")


def by_status(session: Session) -> tuple[list[tuple[str, int]], int]:
    """Contacts per status (statuses no contact has left out) and the ledger's row count."""
    rows = session.execute(
        select(ContactStatusCount.status, func.sum(ContactStatusCount.n), func.count())
        .group_by(ContactStatusCount.status)
        .order_by(ContactStatusCount.status)
    ).all()
    counts = [(status, int(n)) for status, n, _ in rows if n]
    return counts, sum(int(entries) for _, _, entries in rows)


def fold(session: Session) -> None:
    """Replace the ledger rows this transaction sees by one row per status with their sum."""
    if not dialect_of(session).is_postgres:
        return  # SQLite's triggers keep one row per status
    gone = session.execute(
        delete(ContactStatusCount).returning(ContactStatusCount.status, ContactStatusCount.n)
    ).all()
    sums: dict[str, int] = {}
    for status, n in gone:
        sums[status] = sums.get(status, 0) + int(n)
    if sums:
        session.execute(
            insert(ContactStatusCount), [{"status": s, "n": n} for s, n in sums.items()]
        )
