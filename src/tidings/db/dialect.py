"""What differs between the two databases, in one class per database.

Domain code asks `dialect_of(session)` (or `Database.dialect`) instead of comparing dialect
names: the SQLite and PostgreSQL answers to the same question sit side by side here.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from sqlalchemy import Connection, Engine, String, cast, event, func
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from tidings.db import budget

# Execution option of connections that only read: on SQLite their transactions begin deferred
# (no write lock) and refuse writes (PRAGMA query_only); on PostgreSQL they are READ ONLY.
READ_ONLY = "tidings_read_only"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_WAL_CHECKPOINT_PAGES = 10_000
SQLITE_BULK_CACHE_KIB = 262_144


T = TypeVar("T")
Q = TypeVar("Q")  # a Select


class Dialect:
    name: ClassVar[str]
    is_sqlite: ClassVar[bool] = False
    is_postgres: ClassVar[bool] = False
    # Commits can wake other processes (LISTEN/NOTIFY); SQLite's processes poll.
    notifies_commits: ClassVar[bool] = False
    # One index probe per given row is written as a LATERAL subquery (PostgreSQL's planner,
    # without statistics, chose whole-table plans for joins); SQLite has no LATERAL and
    # probes by itself for a plain join or IN.
    probes_laterally: ClassVar[bool] = False
    # Another process may insert between this transaction's statements (no table-wide write
    # lock), so ids and activity cursors can have gaps to fill later.
    concurrent_writers: ClassVar[bool] = False

    def pick(self, *, sqlite: T, postgresql: T) -> T:
        """This database's one of two ways of doing a thing."""
        return sqlite if self.is_sqlite else postgresql

    def insert(self, table: Any) -> Any:
        """The INSERT construct with `on_conflict_do_nothing` / `_do_update`."""
        raise NotImplementedError

    def claim(self, query: Q, *, of: Any = None) -> Q:
        """`query` selecting rows this transaction will work on while other workers skip them.
        (SQLite needs nothing: a writing transaction holds the database's one write lock.)"""
        return query

    def lock(self, query: Q, *, of: Any = None) -> Q:
        """`query` locking the rows it selects until the transaction ends."""
        return query

    def random_hex(self, nbytes: int) -> ColumnElement[str]:
        """SQL: 2 * nbytes random lowercase hex digits, new per row (nbytes <= 12)."""
        raise NotImplementedError

    def inserted_count(self, connection: Connection | Any, statement: Any, id_column: Any) -> int:
        """Run an INSERT ... SELECT ... ON CONFLICT; how many rows it inserted."""
        raise NotImplementedError

    @contextmanager
    def index_scans_only(self, connection: Connection) -> Iterator[None]:
        """Within the block, the planner walks indexes instead of bitmap-scanning them."""
        yield

    def begin_raw(self, cursor: Any) -> None:
        """Begin a writing transaction on a raw DBAPI cursor (as the engine's begin hook)."""

    def commit_raw(self, dbapi_connection: Any, cursor: Any) -> None:
        dbapi_connection.commit()

    def configure(self, engine: Engine) -> None:
        """Install this database's connection and transaction hooks on a new engine."""
        event.listen(engine, "before_cursor_execute", _refuse_statements_past_deadline)

    def read_only_options(self) -> dict[str, Any]:
        """Execution options of connections whose transactions only read."""
        return {READ_ONLY: True}

    def snapshot_read_options(self) -> dict[str, Any]:
        """Execution options of a long read that must see one snapshot (an export: a count and
        the rows it counts agree) and stop no writer. (A SQLite read transaction is one.)"""
        return {READ_ONLY: True}

    def is_cancelled(self, error: DBAPIError) -> bool:
        """`error` stopped a statement at the request's deadline."""
        return False

    def is_expression_too_large(self, error: DBAPIError) -> bool:
        """`error` is the database refusing a condition as too large to evaluate."""
        return False

    def use_bulk_page_cache(self, connection: Connection) -> None:
        """Prepare a connection for a transaction that writes all over large indexes."""


class SQLiteDialect(Dialect):
    name = "sqlite"
    is_sqlite = True

    def configure(self, engine: Engine) -> None:
        super().configure(engine)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        event.listen(engine, "commit", _sqlite_end)
        event.listen(engine, "rollback", _sqlite_end)
        # However a connection goes back to the pool, its deadline goes with its transaction.
        event.listen(
            engine, "checkin", lambda dbapi_connection, _: _interrupter.disarm(dbapi_connection)
        )

    def is_cancelled(self, error: DBAPIError) -> bool:
        return isinstance(error.orig, sqlite3.OperationalError) and str(error.orig) == "interrupted"

    def is_expression_too_large(self, error: DBAPIError) -> bool:
        return "Expression tree is too large" in str(error.orig)

    def insert(self, table: Any) -> Any:
        return sqlite_insert(table)

    def random_hex(self, nbytes: int) -> ColumnElement[str]:
        return func.lower(func.hex(func.randomblob(nbytes)))

    def inserted_count(self, connection: Connection | Any, statement: Any, id_column: Any) -> int:
        return int(connection.execute(statement).rowcount or 0)

    def begin_raw(self, cursor: Any) -> None:
        cursor.execute("BEGIN IMMEDIATE")

    def commit_raw(self, dbapi_connection: Any, cursor: Any) -> None:
        cursor.execute("COMMIT")  # (the connection is in autocommit mode: see _sqlite_connect)

    def use_bulk_page_cache(self, connection: Connection) -> None:
        # SQLite's default 2 MB page cache made every batch re-read the index pages, and a
        # batch whose changed pages outgrow the cache writes them to the WAL twice (spilled,
        # then committed). This connection keeps up to 256 MB (filled only as pages are read):
        # at 100,000 contacts the engine ran 1.35x faster than with 64 MB, no faster with 1 GB.
        connection.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_BULK_CACHE_KIB}")


class PostgresDialect(Dialect):
    name = "postgresql"
    is_postgres = True
    notifies_commits = True
    probes_laterally = True
    concurrent_writers = True

    def insert(self, table: Any) -> Any:
        return postgresql_insert(table)

    def claim(self, query: Q, *, of: Any = None) -> Q:
        locking: Any = query
        return cast_to(query, locking.with_for_update(of=of, skip_locked=True))

    def lock(self, query: Q, *, of: Any = None) -> Q:
        locking: Any = query
        return cast_to(query, locking.with_for_update(of=of))

    def random_hex(self, nbytes: int) -> ColumnElement[str]:
        # The last digits of a version 4 UUID (gen_random_uuid needs no extension).
        uuid_hex = func.replace(cast(func.gen_random_uuid(), String), "-", "")
        return func.substr(uuid_hex, 33 - 2 * nbytes)

    @contextmanager
    def index_scans_only(self, connection: Connection) -> Iterator[None]:
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        yield
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = on")

    def inserted_count(self, connection: Connection | Any, statement: Any, id_column: Any) -> int:
        # psycopg reports no row count for INSERT ... SELECT ... ON CONFLICT via SQLAlchemy.
        return len(connection.execute(statement.returning(id_column)).all())

    def configure(self, engine: Engine) -> None:
        super().configure(engine)
        event.listen(engine, "begin", _postgres_begin)

    def read_only_options(self) -> dict[str, Any]:
        return {READ_ONLY: True, "postgresql_readonly": True}

    def snapshot_read_options(self) -> dict[str, Any]:
        return {READ_ONLY: True, "isolation_level": "REPEATABLE READ"}

    def is_cancelled(self, error: DBAPIError) -> bool:
        # SQLSTATE query_canceled (psycopg's QueryCanceled, not imported: SQLite users lack it)
        return getattr(error.orig, "sqlstate", None) == "57014"


def cast_to(_: Q, value: Any) -> Q:
    return value  # type: ignore[no-any-return]


SQLITE = SQLiteDialect()
POSTGRES = PostgresDialect()
_BY_NAME: dict[str, Dialect] = {SQLITE.name: SQLITE, POSTGRES.name: POSTGRES}


def dialect_named(name: str) -> Dialect:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unsupported database {name!r}: use SQLite or PostgreSQL") from None


def dialect_of(bind: Session | Connection | Engine) -> Dialect:
    """The dialect of what a session (or connection, engine) talks to."""
    target = bind.get_bind() if isinstance(bind, Session) else bind
    return dialect_named(target.dialect.name)


def _refuse_statements_past_deadline(*_: Any) -> None:
    end = budget.deadline()
    if end is not None and budget.is_past(end):
        raise budget.exceeded()


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
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


def _sqlite_begin(connection: Connection) -> None:
    # A transaction that may write takes the write lock up front, so it never fails half-way
    # when it upgrades from reading to writing (a deferred transaction whose snapshot went
    # stale cannot upgrade at all) and bulk.insert_returning_ids may count on its ids. One that
    # only reads begins deferred: it neither waits for a writer nor stops one; query_only makes
    # a write there fail loudly instead of taking the lock half-way.
    read_only = bool(connection.get_execution_options().get(READ_ONLY))
    if connection.info.get("query_only", False) != read_only:  # (BEGIN IMMEDIATE needs it off)
        connection.exec_driver_sql(f"PRAGMA query_only = {int(read_only)}")
        connection.info["query_only"] = read_only
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
    # Stop any statement of this transaction that runs past the request's deadline.
    end = budget.deadline()
    if end is not None:
        _interrupter.arm(connection.connection.dbapi_connection, end)
        connection.info["deadline_armed"] = True
    else:
        _sqlite_end(connection)


def _sqlite_end(connection: Connection) -> None:
    if connection.info.pop("deadline_armed", False):
        _interrupter.disarm(connection.connection.dbapi_connection)


class _Interrupter:
    """One thread that interrupts SQLite connections whose transaction is past its deadline.

    sqlite3's interrupt() may be called from any thread; a progress handler instead would call
    back into Python (taking the GIL) thousands of times a second during every long query,
    slowing every other request of the process."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._due: list[tuple[float, int, Any]] = []  # (deadline, arming, connection), a heap
        self._armed: dict[int, int] = {}  # id(connection) -> its current arming
        self._arming = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, dbapi_connection: Any, end: float) -> None:
        with self._lock:
            arming = next(self._arming)
            self._armed[id(dbapi_connection)] = arming
            heapq.heappush(self._due, (end, arming, dbapi_connection))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tidings-deadlines", daemon=True
                )
                self._thread.start()
            self._lock.notify()

    def disarm(self, dbapi_connection: Any) -> None:
        with self._lock:
            self._armed.pop(id(dbapi_connection), None)

    def _run(self) -> None:
        with self._lock:
            while True:
                while self._due and self._armed.get(id(self._due[0][2])) != self._due[0][1]:
                    heapq.heappop(self._due)  # disarmed (its transaction ended) or re-armed
                if not self._due:
                    self._lock.wait()
                    continue
                end, _, dbapi_connection = self._due[0]
                left = budget.seconds_left(end)
                if left > 0:
                    self._lock.wait(left)
                    continue
                heapq.heappop(self._due)
                del self._armed[id(dbapi_connection)]
                with contextlib.suppress(sqlite3.Error):  # (closed since: nothing to stop)
                    dbapi_connection.interrupt()  # (under the lock: its transaction cannot end)


_interrupter = _Interrupter()


def _postgres_begin(connection: Connection) -> None:
    end = budget.deadline()
    if end is not None:
        # 0 would mean no limit: a request already out of time gets the least there is.
        milliseconds = max(1, int(budget.seconds_left(end) * 1000))
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
