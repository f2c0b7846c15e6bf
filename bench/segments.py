"""Issue 3: segment count over 1,000,000 contacts and 10,000,000 events, SQLite and PostgreSQL.

The segment: "opened or clicked at least once in the last 7 days (machine opens ignored), not
tagged X, status subscribed" — compiled by tidings.segments to ONE SQL query and counted.

Every database generates the same data from the row number with the same integer formulas
(so no 10M-row transfer is needed); the counts of all three must agree, which the script checks.
Baseline, measured in the same run: DuckDB computing the same count over the same data.

PostgreSQL: set TIDINGS_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test,
used as the admin connection to create and drop a scratch database); skipped if unreachable.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import duckdb
from _common import analyze, fresh_sqlite, report, scale
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine, make_url

from tidings.contacts.models import Contact
from tidings.db.engine import Database, create_database, normalize_url
from tidings.db.migrate import upgrade
from tidings.segments import condition_sql, parse_condition

CONTACTS = max(10_000, int(1_000_000 * scale()))
EVENTS = max(100_000, int(10_000_000 * scale()))
NOW = datetime(2026, 3, 1, tzinfo=UTC)
EPOCH = int(NOW.timestamp())
WINDOW = 180 * 86400  # events spread over 180 days
CONDITION = {
    "and": [
        {"event": {"type": ["email_opened", "link_clicked"], "within_days": 7}},
        {"lacks_tag": "X"},
        {"status": "subscribed"},
    ]
}

# The data, as integer formulas of the row number i (identical in every SQL dialect used).
CONTACT_STATUS = (
    "CASE WHEN i % 10 = 0 THEN 'unsubscribed' WHEN i % 17 = 0 THEN 'bounced' ELSE 'subscribed' END"
)
EVENT_CONTACT = f"((i * 2654435761) % {CONTACTS}) + 1"
EVENT_TYPE = (
    "CASE WHEN i % 20 < 8 THEN 'email_sent' WHEN i % 20 < 13 THEN 'email_opened' "
    "WHEN i % 20 < 15 THEN 'link_clicked' WHEN i % 20 < 18 THEN 'site_visit' "
    "WHEN i % 20 = 18 THEN 'purchase' ELSE 'custom:trial' END"
)
EVENT_OFFSET = f"((i * 40503) % {WINDOW})"  # seconds before NOW
EVENT_MACHINE = "(i % 20 BETWEEN 8 AND 12 AND i % 7 = 0)"


def timed_runs(run: Callable[[], int], repeat: int = 5) -> tuple[int, float]:
    """The count and the median wall time of `repeat` runs after one warm-up."""
    count = run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        assert run() == count
        times.append(time.perf_counter() - start)
    return count, statistics.median(times)


def segment_count(database: Database) -> Callable[[], int]:
    where = condition_sql(parse_condition(CONDITION), NOW)
    statement = select(func.count()).select_from(Contact).where(where)

    def run() -> int:
        with database.engine.connect() as conn:
            return int(conn.execute(statement).scalar_one())

    return run


# ---- SQLite ----------------------------------------------------------------------------------


def load_sqlite() -> Database:
    path = fresh_sqlite("segments.db")
    database = create_database(f"sqlite:///{path}")
    upgrade(database)
    raw = database.engine.raw_connection()
    conn = raw.driver_connection
    assert conn is not None
    stamp = NOW.strftime("%Y-%m-%d %H:%M:%S.%f")
    indexes = [
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'activities' "
            "AND sql IS NOT NULL"
        )
    ]
    started = time.perf_counter()
    conn.execute("BEGIN")
    for sql in indexes:  # build them once at the end: much faster than row by row
        conn.execute("DROP INDEX " + sql.split()[2])
    conn.execute(
        f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {CONTACTS})
        INSERT INTO contacts (id, email, status, score, fields, created_at, updated_at)
        SELECT i, 'user' || i || '@example.com', {CONTACT_STATUS}, 0, '{{}}', '{stamp}', '{stamp}'
        FROM n
        """
    )
    conn.execute("INSERT INTO tags (id, name, created_at) VALUES (1, 'X', ?)", (stamp,))
    conn.execute(
        f"INSERT INTO contact_tags (contact_id, tag_id, created_at) "
        f"SELECT id, 1, '{stamp}' FROM contacts WHERE id % 5 = 0"
    )
    conn.execute(
        f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {EVENTS})
        INSERT INTO activities (contact_id, type, cause, data, occurred_at, machine)
        SELECT {EVENT_CONTACT}, {EVENT_TYPE}, 'api', '{{}}',
               strftime('%Y-%m-%d %H:%M:%S', {EPOCH} - {EVENT_OFFSET}, 'unixepoch') || '.000000',
               {EVENT_MACHINE}
        FROM n
        """
    )
    for sql in indexes:
        conn.execute(sql)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    raw.close()
    print(f"  SQLite loaded in {time.perf_counter() - started:.0f} s")
    return database


# ---- PostgreSQL ------------------------------------------------------------------------------


def load_postgres(admin: Engine, name: str) -> Database | None:
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    database = create_database(url)
    upgrade(database)
    started = time.perf_counter()
    with database.engine.begin() as conn:
        indexes = conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'activities' "
                "AND indexname LIKE 'ix_%'"
            )
        ).all()
        for index_name, _ in indexes:
            conn.execute(text(f'DROP INDEX "{index_name}"'))
        conn.execute(
            text(
                f"""
                INSERT INTO contacts (id, email, status, score, fields, created_at, updated_at)
                SELECT i, 'user' || i || '@example.com', {CONTACT_STATUS}, 0, '{{}}',
                       to_timestamp({EPOCH}), to_timestamp({EPOCH})
                FROM generate_series(1, {CONTACTS}::bigint) AS i
                """
            )
        )
        conn.execute(text("INSERT INTO tags (id, name, created_at) VALUES (1, 'X', now())"))
        conn.execute(
            text(
                "INSERT INTO contact_tags (contact_id, tag_id, created_at) "
                "SELECT id, 1, now() FROM contacts WHERE id % 5 = 0"
            )
        )
        conn.execute(
            text(
                f"""
                INSERT INTO activities (contact_id, type, cause, data, occurred_at, machine)
                SELECT {EVENT_CONTACT}, {EVENT_TYPE}, 'api', '{{}}',
                       to_timestamp({EPOCH} - {EVENT_OFFSET}), {EVENT_MACHINE}
                FROM generate_series(1, {EVENTS}::bigint) AS i
                """
            )
        )
        for _, definition in indexes:
            conn.execute(text(definition))
    analyze(database.engine)
    print(f"  PostgreSQL loaded in {time.perf_counter() - started:.0f} s")
    return database


# ---- DuckDB (the baseline) -------------------------------------------------------------------


def duckdb_count() -> Callable[[], int]:
    conn = duckdb.connect()
    conn.execute(
        f"""
        CREATE TABLE contacts AS SELECT i AS id, {CONTACT_STATUS} AS status
        FROM range(1, {CONTACTS} + 1) t(i);
        CREATE TABLE contact_tags AS SELECT id AS contact_id, 1 AS tag_id
        FROM contacts WHERE id % 5 = 0;
        CREATE TABLE tags AS SELECT 1 AS id, 'X' AS name;
        CREATE TABLE activities AS
        SELECT {EVENT_CONTACT}::BIGINT AS contact_id, {EVENT_TYPE} AS type,
               to_timestamp({EPOCH} - {EVENT_OFFSET}) AS occurred_at,
               {EVENT_MACHINE} AS machine
        FROM range(1, {EVENTS} + 1) t(i);
        """
    )
    since = EPOCH - 7 * 86400
    query = f"""
        SELECT count(*) FROM contacts
        WHERE status = 'subscribed'
          AND id NOT IN (SELECT contact_id FROM contact_tags JOIN tags ON tags.id = tag_id
                         WHERE tags.name = 'X')
          AND id IN (SELECT contact_id FROM activities
                     WHERE type IN ('email_opened', 'link_clicked')
                       AND occurred_at >= to_timestamp({since}) AND NOT machine)
    """

    def run() -> int:
        row = conn.execute(query).fetchone()
        assert row is not None
        return int(row[0])

    return run


def main() -> None:
    print(f"{CONTACTS:,} contacts, {EVENTS:,} events; segment: {CONDITION}")
    base_count, base_time = timed_runs(duckdb_count())
    report("DuckDB, same data, same count (baseline)", base_time * 1000, "ms")

    sqlite = load_sqlite()
    count, elapsed = timed_runs(segment_count(sqlite))
    assert count == base_count, (count, base_count)
    # Ratio printed as baseline time / our time: 1.0 = as fast as DuckDB.
    print(f"  {count:,} contacts match")
    report("SQLite: segment count, one query", elapsed * 1000, "ms", target="<= 1000 ms")
    print(f"{'':<58} DuckDB time / SQLite time = {base_time / elapsed:.2f}")
    sqlite.dispose()

    admin_url = normalize_url(
        os.environ.get("TIDINGS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    admin = create_engine(make_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"tidings_bench_segments_{os.getpid()}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"PostgreSQL skipped ({type(exc).__name__}: {exc})")
        return
    try:
        postgres = load_postgres(admin, name)
        assert postgres is not None
        count, elapsed = timed_runs(segment_count(postgres))
        assert count == base_count, (count, base_count)
        report("PostgreSQL: segment count, one query", elapsed * 1000, "ms", target="<= 1000 ms")
        print(f"{'':<58} DuckDB time / PostgreSQL time = {base_time / elapsed:.2f}")
        postgres.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
