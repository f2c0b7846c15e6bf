"""Engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tidings.db.hooks import CommitHooks

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_WAL_CHECKPOINT_PAGES = 10_000
SQLITE_BULK_CACHE_KIB = 262_144


def use_bulk_page_cache(session: Session) -> None:
    """For transactions that write all over large indexes (event ingest, engine batches):
    SQLite's default 2 MB page cache made every batch re-read the index pages, and a batch
    whose changed pages outgrow the cache writes them to the WAL twice (spilled, then
    committed). This connection keeps up to 256 MB (filled only as pages are read): at
    100,000 contacts the engine ran 1.35x faster than with 64 MB, and no faster with 1 GB.
    Nothing to do on PostgreSQL (shared buffers)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_BULK_CACHE_KIB}")


def normalize_url(url: str) -> str:
    """Accept plain postgres URLs and pick psycopg 3 as the driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Checkpoint every ~40 MB of WAL instead of 4 MB: an engine batch writes 1-2 MB, so the
        # default checkpointed (and fsynced) after nearly every batch.
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_CHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # One writer at a time: take the write lock up front, so a transaction never fails
        # half-way when it upgrades from reading to writing. Read-only work may opt out with
        # execution_options(sqlite_deferred=True).
        if connection.get_execution_options().get("sqlite_deferred"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


@dataclass
class Database:
    engine: Engine
    sessionmaker: sessionmaker[Session]
    # Attached to `sessionmaker` by create_database (tidings.db.hooks).
    hooks: CommitHooks = field(default_factory=CommitHooks)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

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
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine_kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        engine = create_engine(url, **engine_kwargs)
        _configure_sqlite(engine)
    else:
        engine_kwargs.setdefault("pool_pre_ping", True)
        engine = create_engine(url, **engine_kwargs)
    database = Database(engine=engine, sessionmaker=sessionmaker(engine, expire_on_commit=False))
    database.hooks.attach(database.sessionmaker, notify=engine.dialect.name == "postgresql")
    return database
