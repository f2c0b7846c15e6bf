"""Bulk inserts that bypass per-row ORM work on the hot paths (imports, ingest, engine batches).

On SQLite the rows go straight to the driver's executemany with values already in their
stored form; on PostgreSQL through a Core executemany (psycopg 3 pipelines it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Table
from sqlalchemy.orm import Session

from tidings.db.types import UTCDateTime, sqlite_timestamp


def _converter(column_type: Any) -> Callable[[Any], Any] | None:
    """How a column's values are stored on SQLite; None when the driver takes them as they are."""
    if isinstance(column_type, UTCDateTime):
        last: list[Any] = [None, None]

        def timestamp(value: datetime | None) -> str | None:
            # Rows of one batch mostly share one timestamp: convert it once.
            if value is None:
                return None
            if value is not last[0]:
                last[0], last[1] = value, sqlite_timestamp(value)
            return last[1]  # type: ignore[no-any-return]

        return timestamp
    if isinstance(column_type, JSON):
        return lambda value: None if value is None else orjson.dumps(value).decode()
    return None


def insert_tuples(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert rows given as tuples in `columns` order (the cheapest form to build per row)."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        connection.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    converters = [_converter(table.c[column].type) for column in columns]
    if any(converters):
        pairs = list(enumerate(converters))
        rows = [
            tuple(convert(row[i]) if convert else row[i] for i, convert in pairs) for row in rows
        ]
    _executemany(connection, table, columns, rows)


def _executemany(
    connection: Any, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    names = ", ".join(f'"{column}"' for column in columns)
    marks = ", ".join("?" for _ in columns)
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', rows)
    finally:
        cursor.close()


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that all have the same keys, in the session's transaction."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        connection.execute(table.insert(), list(rows))
        return
    columns = list(rows[0])
    insert_tuples(session, table, columns, [tuple(row[c] for c in columns) for row in rows])
