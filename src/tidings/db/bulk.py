"""Bulk inserts that bypass per-row ORM work on the hot paths (imports, ingest, engine batches).

On SQLite the rows go straight to the driver's executemany with values already in their
stored form; on PostgreSQL `insert_tuples` uses COPY (one round trip, no per-row statement)
and the dict-based helpers a Core executemany (psycopg 3 pipelines it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    String,
    Table,
    any_,
    bindparam,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from tidings.db.dialect import dialect_of
from tidings.db.types import UTCDateTime, sqlite_timestamp


def dialect_insert(session: Session, table: Any) -> Any:
    """The dialect's INSERT construct, which has `on_conflict_do_nothing` on both databases."""
    return dialect_of(session).insert(table)


def _aware(value: datetime | None) -> datetime | None:
    """Timestamps must carry their timezone (as UTCDateTime binds them everywhere else)."""
    if value is not None and value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
    return value


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _converter(column_type: Any) -> Callable[[Any], Any] | None:
    """How a column's values are stored on SQLite; None when the driver takes them as they are."""
    if isinstance(column_type, UTCDateTime):
        last: list[Any] = [None, None]

        def timestamp(value: datetime | None) -> str | None:
            # Rows of one batch mostly share one timestamp: convert it once.
            if value is None:
                return None
            if value is not last[0]:
                _aware(value)
                last[0], last[1] = value, sqlite_timestamp(value)
            return last[1]  # type: ignore[no-any-return]

        return timestamp
    if isinstance(column_type, JSON):
        return _json_encoder()
    return None


def _json_encoder() -> Callable[[Any], str | None]:
    """JSON text for one insert's values. Rows often share one value object (the activities
    of one tag change): it is encoded once, found by identity (every value stays alive until
    the insert is over)."""
    done: dict[int, str | None] = {}

    def json_text(value: Any) -> str | None:
        key = id(value)
        text = done.get(key)
        if text is None:
            text = done[key] = _json_text(value)
        return text

    return json_text


def insert_tuples(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert rows given as tuples in `columns` order (the cheapest form to build per row)."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        if not _copy(connection, table, columns, rows):
            connection.execute(
                table.insert(), [dict(zip(columns, row, strict=True)) for row in rows]
            )
        return
    converting = [
        (index, convert)
        for index, column in enumerate(columns)
        if (convert := _converter(table.c[column].type)) is not None
    ]
    if converting:
        rows = _converted(rows, converting)
    _executemany(connection, table, columns, rows)


def _copy_converter(column_type: Any, dialect: Any) -> tuple[bool, Callable[[Any], Any] | None]:
    """(usable by COPY, converter): COPY sends values as psycopg dumps them, so only types
    whose SQLAlchemy bind processing is nothing, or known here, may take that path."""
    if isinstance(column_type, UTCDateTime):
        return True, _aware
    if isinstance(column_type, JSON):
        return True, _json_encoder()
    if isinstance(column_type, Boolean):
        return True, lambda value: None if value is None else bool(value)
    return column_type.dialect_impl(dialect).bind_processor(dialect) is None, None


def _copy(connection: Any, table: Table, columns: Sequence[str], rows: Sequence[Any]) -> bool:
    """COPY the rows in (PostgreSQL): returns False, having done nothing, for a column type
    COPY cannot take as it is."""
    dialect = connection.dialect
    converting: list[tuple[int, Callable[[Any], Any]]] = []
    for index, column in enumerate(columns):
        usable, convert = _copy_converter(table.c[column].type, dialect)
        if not usable:
            return False
        if convert is not None:
            converting.append((index, convert))
    if converting:
        rows = _converted(rows, converting)
    preparer = dialect.identifier_preparer
    names = ", ".join(preparer.quote(column) for column in columns)
    statement = f"COPY {preparer.format_table(table)} ({names}) FROM STDIN"
    driver = connection.connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
    return True


def _converted(
    rows: Sequence[Sequence[Any]], converting: list[tuple[int, Callable[[Any], Any]]]
) -> list[tuple[Any, ...]]:
    """Column by column (transpose, map, transpose back): no Python loop per row."""
    columns: list[Any] = list(zip(*rows, strict=True))
    for index, convert in converting:
        columns[index] = map(convert, columns[index])
    return list(zip(*columns, strict=True))


def _executemany(
    connection: Any, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
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


def insert_returning_ids(
    session: Session, table: Table, rows: Sequence[dict[str, Any]]
) -> list[int]:
    """Insert rows (same keys) and return their new ids, in the order of `rows`."""
    if not rows:
        return []
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
        return [row[0] for row in connection.execute(statement, list(rows))]
    # SQLite gives each new row the next id (max(rowid) + 1, or past the largest ever handed
    # out on an AUTOINCREMENT table). Every write transaction holds the write lock from its
    # start (BEGIN IMMEDIATE), so nobody else can insert in between: the new ids are the
    # len(rows) integers up to the new maximum, all above the old one. Checked afterwards,
    # never assumed silently.
    id_column = table.c.id
    before = session.execute(select(func.coalesce(func.max(id_column), 0))).scalar_one()
    bulk_insert(session, table, rows)
    after = session.execute(select(func.max(id_column))).scalar_one()
    first = after - len(rows) + 1
    if first <= before:
        raise RuntimeError(f"{table.name}: expected {len(rows)} ids above {before}, max {after}")
    return list(range(first, after + 1))


def values_select(session: Session, values: Sequence[Any], type_: Any) -> Any:
    """SELECT of one column `value` over `values`, with ONE bound parameter (as in_values):
    the source of an INSERT ... SELECT that makes one row per value."""
    if session.get_bind().dialect.name == "sqlite":
        items = func.json_each(bindparam(None, orjson.dumps(list(values)).decode(), type_=String))
        return select(literal_column("value").label("value")).select_from(items)
    array = bindparam(None, list(values), type_=ARRAY(type_))
    return select(func.unnest(array, type_=type_).label("value"))


def rows_select(
    session: Session, columns: Sequence[tuple[str, Any]], rows: Sequence[Sequence[Any]]
) -> Any:
    """SELECT of `rows` (tuples in `columns` order, given as (name, type) pairs), with ONE
    bound parameter per column (as values_select): the source of an INSERT ... SELECT that
    makes one row per tuple, whatever the number of rows."""
    if session.get_bind().dialect.name == "sqlite":
        # Timestamps in their stored form: compared as text with stored timestamps.
        stamps = {
            i: _converter(type_) or str
            for i, (_, type_) in enumerate(columns)
            if isinstance(type_, UTCDateTime)
        }
        if stamps:
            rows = [
                tuple(stamps[i](v) if i in stamps else v for i, v in enumerate(row)) for row in rows
            ]
        items = func.json_each(bindparam(None, orjson.dumps(list(rows)).decode(), type_=String))
        value: ColumnElement[Any] = literal_column("value")
        return select(
            *(
                type_coerce(func.json_extract(value, f"$[{index}]"), type_).label(name)
                for index, (name, type_) in enumerate(columns)
            )
        ).select_from(items)
    by_column = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    return select(
        *(
            func.unnest(bindparam(None, list(values), type_=ARRAY(type_)), type_=type_).label(name)
            for (name, type_), values in zip(columns, by_column, strict=True)
        )
    )


def in_values(session: Session, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN values` with ONE bound parameter, however many values.

    A plain IN list compiles a statement per list length and hits parameter limits; a JSON
    array (SQLite) or an array (PostgreSQL) keeps it one cached statement.
    """
    if session.get_bind().dialect.name == "sqlite":
        items = func.json_each(bindparam(None, orjson.dumps(list(values)).decode(), type_=String))
        return column.in_(select(literal_column("value")).select_from(items))  # type: ignore[no-any-return]
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))  # type: ignore[no-any-return]


_SEQUENCES: dict[str, str] = {}  # table -> its id sequence (PostgreSQL)


def reserve_ids(session: Session, table: Table, count: int) -> list[int]:
    """`count` ids for rows of `table` that this transaction will insert later, with these ids.

    PostgreSQL takes them from the id sequence (never handed out twice). SQLite gives a new
    row max(rowid) + 1 (on a table without AUTOINCREMENT, which may hand out the id of a
    deleted row again) and every write transaction holds the write lock from its start, so the
    ids above both the table's largest and the last reserved (remembered in the session) are
    free until the transaction inserts them.
    """
    if count <= 0:
        return []
    if session.get_bind().dialect.name != "sqlite":
        sequence = _SEQUENCES.get(table.name)
        if sequence is None:
            found = session.scalar(select(func.pg_get_serial_sequence(table.name, "id")))
            sequence = _SEQUENCES[table.name] = str(found)
        # The sequence as a constant: looked up per row, it costs ten times the nextval().
        regclass: ColumnElement[Any] = literal_column(f"'{sequence}'::regclass")
        statement = select(func.nextval(regclass)).select_from(func.generate_series(1, count))
        return list(session.scalars(statement))
    key = f"reserved_ids:{table.name}"
    stored = session.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
    first = max(int(stored), session.info.get(key, 0)) + 1
    session.info[key] = first + count - 1
    return list(range(first, first + count))
