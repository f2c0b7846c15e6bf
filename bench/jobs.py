"""Issue 16: jobs on SQLite and PostgreSQL (TIDINGS_BENCH_POSTGRES_URL; skipped if
unreachable). Sizes: BENCH_JOBS_CONTACTS (default 1,000,000), BENCH_JOBS_EVENTS (default
2,000,000; the issue's 10,000,000 with BENCH_JOBS_EVENTS=10000000), BENCH_JOBS_HYGIENE
(default 100,000); BENCH_SCALE / --quick shrink all three.

Data is generated inside each database by set-based SQL. Each figure is printed with its
ratio to a bare baseline measured in the same run:

- contact export (`kind: export`, `type: contacts`, the importer's columns with tags and
  lists) in rows/s, with the peak RSS of the exporting process at 100,000 rows and at the
  end - against a bare `sqlite3` cursor loop writing the same CSV with `csv.writer`
  (SQLite) / a bare `COPY (the same query) TO STDOUT` into a file (PostgreSQL);
- raw event export of one month (CSV) in rows/s, against the same kind of baseline;
- hygiene: deleting a segment of contacts with their tags, memberships, automation runs and
  events (`kind: hygiene`, `action: delete`) in seconds, against the bare DELETEs of the same
  rows.

Exports run in a child process each (`--child`), so each peak RSS is that export's alone.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import DATA_DIR, fresh_sqlite, report, scale, scratch_postgres
from sqlalchemy import text

from tidings.clock import SystemClock
from tidings.config import Settings
from tidings.db.engine import Database, create_database
from tidings.db.migrate import upgrade
from tidings.jobs import runner
from tidings.jobs.specs import parse_spec

CONTACTS = int(int(os.environ.get("BENCH_JOBS_CONTACTS", "1000000")) * scale())
EVENTS = int(int(os.environ.get("BENCH_JOBS_EVENTS", "2000000")) * scale())
HYGIENE = int(int(os.environ.get("BENCH_JOBS_HYGIENE", "100000")) * scale())
RSS_AT = 100_000
MONTH = 28 * 86_400
TAGS_SQL = (
    "(SELECT {agg} FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = c.id)"
)
LISTS_SQL = (
    "(SELECT {agg} FROM list_memberships m JOIN lists l ON l.id = m.list_id "
    "WHERE m.contact_id = c.id AND m.status = 'active')"
)


# ---- data ---------------------------------------------------------------------------------


def _numbers(database: Database, count: int) -> str:
    """A FROM clause of the numbers 1..count as `n`."""
    if database.is_sqlite:
        return (
            f"(WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq "
            f"WHERE n < {count}) SELECT n FROM seq)"
        )
    return f"generate_series(1, {count}) AS n"


def _now_sql(database: Database) -> str:
    return "'2026-03-01 00:00:00.000000'" if database.is_sqlite else "'2026-03-01 00:00:00+00'"


def add_contacts(database: Database, count: int, tag: str, prefix: str) -> None:
    """`count` contacts, each with the tag `tag` and on the list News, set-wise."""
    now = _now_sql(database)
    with database.engine.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO tags (name, created_at) SELECT '{tag}', "
                f"{now} WHERE NOT EXISTS (SELECT 1 FROM tags WHERE name = '{tag}')"
            ),
        )
        conn.execute(
            text(
                f"INSERT INTO lists (name, double_opt_in, created_at) SELECT 'News', false, {now} "
                "WHERE NOT EXISTS (SELECT 1 FROM lists WHERE name = 'News')"
            )
        )
        first = conn.scalar(text("SELECT coalesce(max(id), 0) FROM contacts"))
        fields = "'{}'" if database.is_sqlite else "'{}'::jsonb"
        conn.execute(
            text(
                "INSERT INTO contacts (email, first_name, last_name, status, score, fields, "
                "created_at, updated_at) "
                f"SELECT '{prefix}' || n || '@example' || (n % 97) || '.com', 'First' || n, "
                f"'Last' || n, 'subscribed', 0, {fields}, {now}, {now} "
                f"FROM {_numbers(database, count)}"
            )
        )
        conn.execute(
            text(
                "INSERT INTO contact_tags (contact_id, tag_id, created_at) "
                f"SELECT id, (SELECT id FROM tags WHERE name = '{tag}'), {now} FROM contacts "
                "WHERE id > :first"
            ),
            {"first": first},
        )
        conn.execute(
            text(
                "INSERT INTO list_memberships (contact_id, list_id, status, created_at, "
                f"updated_at) SELECT id, (SELECT id FROM lists WHERE name = 'News'), 'active', "
                f"{now}, {now} FROM contacts WHERE id > :first"
            ),
            {"first": first},
        )


def add_events(database: Database, count: int, contacts: int) -> None:
    """`count` raw events over February 2026, on `contacts` contacts."""
    if database.is_sqlite:
        at = (
            "strftime('%Y-%m-%d %H:%M:%S', '2026-02-01', '+' || (n % "
            f"{MONTH}) || ' seconds') || '.000000'"
        )
        data = (
            """'{"message_id":"m' || n || '","url":"https://shop.example/p/' || (n % 50) || '"}'"""
        )
    else:
        at = f"'2026-02-01 00:00:00+00'::timestamptz + (n % {MONTH}) * interval '1 second'"
        data = "jsonb_build_object('message_id', 'm' || n, 'url', 'https://shop.example/p/' || (n % 50))"
    kinds = "CASE n % 3 WHEN 0 THEN 'email_opened' WHEN 1 THEN 'link_clicked' ELSE 'email_delivered' END"
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO activities (contact_id, type, cause, data, occurred_at, machine) "
                f"SELECT 1 + n % {max(contacts, 1)}, {kinds}, 'tracking', {data}, {at}, false "
                f"FROM {_numbers(database, count)}"
            )
        )


def add_runs_and_events(database: Database, tag: str) -> None:
    """For each contact of `tag`: an automation run (enrolment) and two events."""
    now = _now_sql(database)
    goals = "'[]'" if database.is_sqlite else "'[]'::jsonb"
    data = "'{}'" if database.is_sqlite else "'{}'::jsonb"
    with database.engine.begin() as conn:
        tagged = f"SELECT ct.contact_id FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE t.name = '{tag}'"
        conn.execute(
            text(
                "INSERT INTO enrolments (automation_id, version, contact_id, state, step, hops, "
                f"goals_hit, run_slot, entered_at) SELECT 1, 1, contact_id, 'active', 'wait', 0, "
                f"{goals}, 'once', {now} FROM ({tagged}) x"
            )
        )
        for kind in ("email_opened", "link_clicked"):
            conn.execute(
                text(
                    "INSERT INTO activities (contact_id, type, cause, data, occurred_at, machine) "
                    f"SELECT contact_id, '{kind}', 'tracking', {data}, {now}, false FROM ({tagged}) x"
                )
            )


def analyze(database: Database) -> None:
    with database.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


# ---- exports in a child process -----------------------------------------------------------


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(url: str, what: str, out_dir: str) -> None:
    """Run one export here and print {"seconds", "rows", "rss_at", "rss_end"} as JSON."""
    database = create_database(url)
    settings = Settings(database_url=url, export_dir=Path(out_dir), secret_key="bench")
    rss_at: list[float] = []

    def progress(done: int, _total: int | None) -> None:
        if done >= RSS_AT and not rss_at:
            rss_at.append(_rss_mb())

    started, cpu_before = time.perf_counter(), _cpu_seconds()
    if what.startswith("tidings-"):
        spec = (
            {"kind": "export", "export": {"type": "contacts"}}
            if what == "tidings-contacts"
            else {
                "kind": "export",
                "export": {
                    "type": "events",
                    "since": "2026-02-01T00:00:00Z",
                    "until": "2026-03-01T00:00:00Z",
                },
            }
        )
        done = runner.run_job(
            database,
            parse_spec(spec),
            clock=SystemClock(),
            settings=settings,
            requested_by="bench",
            progress=progress,
        )
        assert done.status == "succeeded", done.detail
        rows = done.rows_written
    else:
        rows = _bare(database, what, Path(out_dir) / f"{what}.csv", progress)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": rows,
                "rss_at": rss_at[0] if rss_at else None,
                "rss_end": _rss_mb(),
                "cpu": _cpu_seconds() - cpu_before,
            }
        )
    )


def _bare_query(database: Database, what: str) -> str:
    if what == "bare-contacts":
        agg = "group_concat(name, '|')" if database.is_sqlite else "string_agg(name, '|')"
        return (
            "SELECT c.email, c.first_name, c.last_name, c.phone, c.status, "
            f"{TAGS_SQL.format(agg=agg.replace('name', 't.name'))}, "
            f"{LISTS_SQL.format(agg=agg.replace('name', 'l.name'))} FROM contacts c ORDER BY c.id"
        )
    if database.is_sqlite:
        return (
            "SELECT id, replace(occurred_at, ' ', 'T') || 'Z', type, contact_id, machine, "
            "event_id, data FROM activities WHERE occurred_at >= '2026-02-01 00:00:00.000000' "
            "AND occurred_at < '2026-03-01 00:00:00.000000' ORDER BY id"
        )
    return (
        "SELECT id, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
        "type, contact_id, machine::int, event_id, data::text FROM activities "
        "WHERE occurred_at >= '2026-02-01T00:00:00Z' AND occurred_at < '2026-03-01T00:00:00Z' "
        "ORDER BY id"
    )


def _bare(database: Database, what: str, path: Path, progress: Any) -> int:
    """The baseline: a bare cursor loop (SQLite) or COPY (PostgreSQL) writing the CSV."""
    query = _bare_query(database, what)
    url = database.engine.url
    if database.is_sqlite:
        conn = sqlite3.connect(str(url.database))
        rows = 0
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            cursor = conn.execute(query)
            while batch := cursor.fetchmany(10_000):
                writer.writerows(batch)
                rows += len(batch)
                progress(rows, None)
        conn.close()
        return rows
    import psycopg

    with psycopg.connect(url.set(drivername="postgresql").render_as_string(False)) as conn:
        rows = 0
        with (
            path.open("wb") as out,
            conn.cursor().copy(f"COPY ({query}) TO STDOUT WITH CSV") as copy,
        ):
            for chunk in copy:
                out.write(chunk)
                rows += bytes(chunk).count(b"\n")
                progress(rows, None)
        return rows


def run_child(url: str, what: str) -> dict[str, Any]:
    out_dir = DATA_DIR / f"exports-{what}"
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.iterdir():
        old.unlink()
    done = subprocess.run(
        [sys.executable, __file__, "--child", url, what, str(out_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    for old in out_dir.iterdir():
        old.unlink()
    return result


def exports(label: str, url: str) -> None:
    database = create_database(url)
    upgrade(database)
    with timed_print(f"{label}: generated {CONTACTS:,} contacts and {EVENTS:,} events"):
        add_contacts(database, CONTACTS, "vip", "user")
        add_events(database, EVENTS, CONTACTS)
        analyze(database)
    database.dispose()
    for kind, target in (("contacts", "100,000 rows/s"), ("events", "200,000 rows/s")):
        bare = run_child(url, f"bare-{kind}")
        ours = run_child(url, f"tidings-{kind}")
        rate, bare_rate = ours["rows"] / ours["seconds"], bare["rows"] / bare["seconds"]
        report(f"{label}: {kind} export, {ours['rows']:,} rows", rate, "rows/s", target=target)
        report(f"{label}: {kind} bare baseline", bare_rate, "rows/s")
        print(f"    ratio tidings/bare throughput {rate / bare_rate:.2f}")
        # The exporting process's own CPU (with SQLite the database work is in it too): what
        # a quiet machine's wall time would be close to.
        report(f"{label}: {kind} export per CPU second", ours["rows"] / ours["cpu"], "rows/s")
        report(
            f"{label}: {kind} bare baseline per CPU second", bare["rows"] / bare["cpu"], "rows/s"
        )
        if ours["rss_at"] is not None:
            report(f"{label}: {kind} export peak RSS at {RSS_AT:,} rows", ours["rss_at"], "MB")
        report(f"{label}: {kind} export peak RSS at the end", ours["rss_end"], "MB")
        report(f"{label}: {kind} bare baseline peak RSS at the end", bare["rss_end"], "MB")


class timed_print:
    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        print(f"{self.label} in {time.perf_counter() - self.start:.1f} s", flush=True)


# ---- hygiene ------------------------------------------------------------------------------


def hygiene_data(url: str) -> Database:
    database = create_database(url)
    upgrade(database)
    add_contacts(database, HYGIENE, "old", "old")
    add_contacts(database, HYGIENE // 10, "keep", "keep")
    add_runs_and_events(database, "old")
    analyze(database)
    return database


def bare_deletes(database: Database) -> float:
    old = (
        "SELECT ct.contact_id FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id "
        "WHERE t.name = 'old'"
    )
    started = time.perf_counter()
    with database.engine.begin() as conn:
        conn.execute(text(f"CREATE TEMPORARY TABLE gone AS {old}"))
        for statement in (
            "DELETE FROM activities WHERE contact_id IN (SELECT contact_id FROM gone)",
            "DELETE FROM enrolments WHERE contact_id IN (SELECT contact_id FROM gone)",
            "DELETE FROM contact_tags WHERE contact_id IN (SELECT contact_id FROM gone)",
            "DELETE FROM list_memberships WHERE contact_id IN (SELECT contact_id FROM gone)",
            "DELETE FROM contacts WHERE id IN (SELECT contact_id FROM gone)",
        ):
            conn.execute(text(statement))
    return time.perf_counter() - started


def hygiene(label: str, make_url: Any) -> None:
    with make_url("bare") as url:
        if url is None:
            return
        database = hygiene_data(url)
        bare = bare_deletes(database)
        database.dispose()
    with make_url("tidings") as url:
        database = hygiene_data(url)
        spec = {
            "kind": "hygiene",
            "action": "delete",
            "segment": {"has_tag": "old"},
            "reason": "bench",
        }
        settings = Settings(database_url=url, secret_key="bench")
        started, cpu = time.perf_counter(), _cpu_seconds()
        done = runner.run_job(
            database, parse_spec(spec), clock=SystemClock(), settings=settings, requested_by="bench"
        )
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        assert done.status == "succeeded" and done.rows_written == HYGIENE, done.detail
        database.dispose()
    report(
        f"{label}: hygiene delete of {HYGIENE:,} contacts (tags, lists, runs, events)",
        seconds,
        "s",
        target="20 s",
    )
    report(f"{label}: hygiene delete, CPU of this process", cpu, "s")
    report(f"{label}: bare DELETEs of the same rows", bare, "s")
    print(f"    ratio tidings/bare time {seconds / bare:.2f}")


def _sqlite_url(name: str) -> Any:
    from contextlib import contextmanager

    @contextmanager
    def make(kind: str) -> Any:
        yield f"sqlite:///{fresh_sqlite(f'{name}-{kind}.db')}"

    return make


def main() -> None:
    print(f"contacts {CONTACTS:,}, events {EVENTS:,}, hygiene {HYGIENE:,}")
    exports("SQLite", f"sqlite:///{fresh_sqlite('jobs.db')}")
    hygiene("SQLite", _sqlite_url("jobs-hygiene"))
    with scratch_postgres("jobs") as url:
        if url is not None:
            exports("PostgreSQL", url)
    hygiene("PostgreSQL", lambda kind: scratch_postgres(f"jobs_hygiene_{kind}"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
