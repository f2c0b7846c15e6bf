"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias); PostgreSQL gets bigint.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in, timezone-aware UTC datetimes out.

    PostgreSQL stores timestamptz; SQLite stores SQLAlchemy's fixed-width ISO text (which sorts
    and compares correctly as text), so values are converted to UTC and made naive for it.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


def sqlite_timestamp(value: datetime) -> str:
    """The text SQLAlchemy stores for a datetime on SQLite, for driver-level bulk inserts."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def stored_time(value: datetime) -> str:
    """The same text as sqlite_timestamp, three times cheaper (the ingest's hot paths)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


class timestamp_plus(FunctionElement[datetime]):
    """SQL: a timestamp column plus a whole number of seconds, the same on both databases
    (arguments: the column, the seconds). SQLite shifts its stored text and keeps its
    microseconds; PostgreSQL adds an interval."""

    type = UTCDateTime()
    name = "timestamp_plus"
    inherit_cache = True


@compiles(timestamp_plus, "sqlite")
def _sqlite_timestamp_plus(element: timestamp_plus, compiler: SQLCompiler, **kw: Any) -> str:
    column, seconds = (compiler.process(c, **kw) for c in element.clauses)
    # The stored form is 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds leave the fraction as it is.
    return (
        f"(strftime('%Y-%m-%d %H:%M:%S', {column}, ({seconds}) || ' seconds') "
        f"|| substr({column}, 20))"
    )


@compiles(timestamp_plus, "postgresql")
def _pg_timestamp_plus(element: timestamp_plus, compiler: SQLCompiler, **kw: Any) -> str:
    column, seconds = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} + make_interval(secs => {seconds}))"
