"""SQL the exports need written per dialect, and PostgreSQL's COPY for CSV."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TextIO

from sqlalchemy import Select, Text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class iso_text(FunctionElement[str]):
    """A UTC timestamp column as ISO 8601 text ending in Z, made by the database: an export
    of ten million events then never parses and formats a datetime in Python."""

    type = Text()
    inherit_cache = True


@compiles(iso_text, "sqlite")
def _iso_sqlite(element: iso_text, compiler: SQLCompiler, **kw: Any) -> str:
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC, tidings.db.types.UTCDateTime).
    (column,) = element.clauses
    return f"replace({compiler.process(column, **kw)}, ' ', 'T') || 'Z'"


@compiles(iso_text, "postgresql")
def _iso_postgresql(element: iso_text, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return (
        f"to_char({compiler.process(column, **kw)} AT TIME ZONE 'UTC', "
        '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')'
    )


class json_text(FunctionElement[str]):
    """A JSON column as its text (PostgreSQL's jsonb rendered by the server; SQLite keeps text)."""

    type = Text()
    inherit_cache = True


@compiles(json_text, "sqlite")
def _json_sqlite(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return compiler.process(column, **kw)


@compiles(json_text, "postgresql")
def _json_postgresql(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return f"({compiler.process(column, **kw)})::text"


def copy_csv(session: Session, query: Select[Any], out: TextIO) -> Iterator[int]:
    """PostgreSQL: write the rows of `query` to `out` as CSV with `COPY (query) TO STDOUT` -
    the server formats them, nothing is made per row in Python. Yields the lines written per
    chunk (for progress). Binds are processed as SQLAlchemy would, then bound by psycopg."""
    connection = session.connection()
    compiled = query.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    processors: dict[str, Any] = dict(compiled._bind_processors)
    params = {
        key: processors[key](value) if key in processors else value
        for key, value in compiled.construct_params().items()
    }
    driver = connection.connection.driver_connection
    assert driver is not None
    out.flush()
    binary = out.buffer
    statement = f"COPY ({compiled.string}) TO STDOUT WITH (FORMAT csv)"
    with driver.cursor() as cursor, cursor.copy(statement, params) as copy:
        for chunk in copy:
            data = bytes(chunk)
            binary.write(data)
            yield data.count(b"\n")
