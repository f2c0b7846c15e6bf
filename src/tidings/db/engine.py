"""Engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, orm
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tidings.db.dialect import READ_ONLY, SQLITE_BUSY_TIMEOUT_MS, Dialect, dialect_named, dialect_of
from tidings.db.hooks import CommitHooks

__all__ = ["READ_ONLY", "Database", "create_database", "normalize_url", "use_bulk_page_cache"]


def use_bulk_page_cache(session: Session) -> None:
    """For transactions that write all over large indexes (event ingest, engine batches): a
    page cache large enough for them on SQLite; nothing to do on PostgreSQL (shared buffers)."""
    connection = session.connection()
    dialect_of(connection).use_bulk_page_cache(connection)


def normalize_url(url: str) -> str:
    """Accept plain postgres URLs and pick psycopg 3 as the driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass
class Database:
    engine: Engine
    sessionmaker: sessionmaker[Session]
    # Attached to `sessionmaker` by create_database (tidings.db.hooks).
    hooks: CommitHooks = field(default_factory=CommitHooks)

    @cached_property
    def dialect(self) -> Dialect:
        return dialect_of(self.engine)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect.is_sqlite

    @cached_property
    def read_sessionmaker(self) -> orm.sessionmaker[Session]:
        """Sessions whose transactions only read (see READ_ONLY)."""
        reading = self.engine.execution_options(**self.dialect.read_only_options())
        return orm.sessionmaker(reading, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits when the block ends normally, rolls back otherwise."""
        with self.sessionmaker() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A unit of work that only reads: on SQLite it never takes (or waits for) the write
        lock, so it neither stops writers nor is stopped by them. A write in it fails."""
        with self.read_sessionmaker() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _json_serializer(value: Any) -> str:
    # orjson: several times faster than json on the ingest paths, and the same JSON.
    return orjson.dumps(value).decode()


def create_database(url: str, **engine_kwargs: Any) -> Database:
    url = normalize_url(url)
    engine_kwargs.setdefault("json_serializer", _json_serializer)
    # Everything stored was written by orjson, so orjson reads it back (3-5x json.loads).
    engine_kwargs.setdefault("json_deserializer", orjson.loads)
    dialect = dialect_named(make_url(url).get_backend_name())
    if dialect.is_sqlite:
        engine_kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    else:
        engine_kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **engine_kwargs)
    dialect.configure(engine)
    database = Database(engine=engine, sessionmaker=sessionmaker(engine, expire_on_commit=False))
    database.hooks.attach(database.sessionmaker, notify=dialect.is_postgres)
    return database
