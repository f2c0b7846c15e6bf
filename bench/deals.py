"""Issue 15: the deals CRM at 1,000,000 deals in 5 pipelines over 200,000 contacts, on SQLite
and PostgreSQL (TIDINGS_BENCH_POSTGRES_URL; skipped if unreachable). BENCH_SCALE / --quick
shrink it.

Data is generated inside each database by set-based SQL from the row number (deals, their
contacts, their stage visits, a deal_created activity each); the figures then go through the
package's own functions, each printed with its ratio to a bare query measured in the same run:

- the board of one pipeline (counts and sums per stage, the first 50 cards of each stage),
  against one bare count-and-sum over the pipeline's open deals (what reading the sums from
  the deals instead of the stage totals would cost at least);
- the conversion funnel and the forecast of one pipeline, against a bare count of the rows each
  reads;
- a bulk move of 10,000 deals to another stage with their activities and stage visits, and
  the engine's trigger matching over those activities, against the bare UPDATE of their stage;
- a new scoring rule recomputed over every deal (deals per second), against the bare
  UPDATE ... FROM that writes the same scores;
- a stage change through the API of a running `tidings serve` until its stage-triggered
  automation's tag and task show through the API, p99 over 1,000 changes, against the PATCH
  alone (bench/deal_automation.py; `--only-automation` runs just this figure).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from _common import analyze, fresh_sqlite, report, scale, scratch_postgres
from deal_automation import bench_stage_latency
from sqlalchemy import func, select, text

from tidings.automations.engine import Engine
from tidings.clock import FakeClock
from tidings.db.engine import Database, create_database
from tidings.db.migrate import upgrade
from tidings.deals import moves, reach, reports, scoring, totals
from tidings.deals.models import Deal, Stage

DEALS = max(20_000, int(1_000_000 * scale()))
CONTACTS = max(4_000, DEALS // 5)
PIPELINES = 5
STAGES = 6
USERS = 50
MOVED = min(10_000, DEALS // 100)
NOW = datetime(2026, 3, 1, tzinfo=UTC)
EPOCH = int(NOW.timestamp())
RULE = {"deal": {"field": "value", "op": "gte", "value": 5_000_000}}

# The data, as integer formulas of the deal number i (the same in both dialects).
PIPELINE = f"(i % {PIPELINES}) + 1"
STAGE_POSITION = f"((i * 7) % {STAGES})"
STAGE = f"((i % {PIPELINES}) * {STAGES} + {STAGE_POSITION} + 1)"
STATUS = "CASE WHEN i % 10 < 6 THEN 'open' WHEN i % 10 < 9 THEN 'won' ELSE 'lost' END"
VALUE = "((i * 7919) % 10000000)"
CONTACT = f"(((i * 2654435761) % {CONTACTS}) + 1)"
OWNER = f"((i % {USERS}) + 1)"
CREATED_AGO = "(((i * 17) % 365) * 86400 + 3600 * 6)"  # seconds before NOW
CLOSE_DAYS = "((i * 31) % 365)"  # open deals: expected close in this many days
CLOSED_AGO = "(((i * 13) % 180) * 86400)"


def timed(run: Callable[[], object], repeat: int = 7) -> tuple[float, float]:
    """Median wall and CPU seconds (this process's) of `repeat` runs after one warm-up. On a
    shared machine the CPU time of an SQLite query (run in this process) says more than the
    wall time: it does not grow while the process waits for a core."""
    run()
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def figure(
    label: str,
    run: Callable[[], object],
    baseline: Callable[[], object],
    target: str = "",
    repeat: int = 7,
) -> None:
    wall, cpu = timed(run, repeat)
    base_wall, base_cpu = timed(baseline, repeat)
    report(label, wall * 1000, "ms", base_wall * 1000, target)
    print(
        f"{'':<58} baseline {base_wall * 1000:,.1f} ms; CPU here {cpu * 1000:,.1f} ms, "
        f"baseline {base_cpu * 1000:,.1f} ms"
    )


# ---- loading ---------------------------------------------------------------------------------


def _setup_rows(conn: object, stamp: str, execute: Callable[[str], object]) -> None:
    for p in range(1, PIPELINES + 1):
        execute(
            f"INSERT INTO pipelines (id, name, currency, created_at, updated_at) "
            f"VALUES ({p}, 'Pipeline {p}', 'EUR', {stamp}, {stamp})"
        )
        for s in range(STAGES):
            execute(
                f"INSERT INTO stages (id, pipeline_id, title, colour, probability, position, "
                f"created_at, updated_at) VALUES ({(p - 1) * STAGES + s + 1}, {p}, 'Stage {s}', "
                f"'#4c6ef5', {(s + 1) * 15}, {s}, {stamp}, {stamp})"
            )
    for u in range(1, USERS + 1):
        execute(
            f"INSERT INTO users (id, email, name, role, active, created_at, updated_at) "
            f"VALUES ({u}, 'user{u}@example.com', 'User {u}', 'member', true, {stamp}, {stamp})"
        )


def load_sqlite() -> Database:
    path = fresh_sqlite("deals.db")
    database = create_database(f"sqlite:///{path}")
    upgrade(database)
    raw = database.engine.raw_connection()
    conn = raw.driver_connection
    assert conn is not None
    tables = ("deals", "deal_contacts", "deal_stage_visits", "activities")
    indexes = [
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({', '.join(repr(t) for t in tables)})"
        )
    ]
    started = time.perf_counter()
    conn.execute("BEGIN")
    for sql in indexes:  # built once at the end: much faster than row by row
        conn.execute("DROP INDEX " + sql.split()[2])

    def ts(seconds_ago: str) -> str:
        return f"strftime('%Y-%m-%d %H:%M:%S', {EPOCH} - ({seconds_ago}), 'unixepoch') || '.000000'"

    stamp = f"'{NOW.strftime('%Y-%m-%d %H:%M:%S')}.000000'"
    _setup_rows(conn, stamp, conn.execute)
    series = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})"
    conn.execute(
        f"""{series.format(CONTACTS)}
        INSERT INTO contacts (id, email, status, score, fields, created_at, updated_at)
        SELECT i, 'user' || i || '@example.com', 'subscribed', 0, '{{}}', {stamp}, {stamp} FROM n"""
    )
    conn.execute(
        f"""{series.format(DEALS)}
        INSERT INTO deals (id, title, value, currency, contact_id, owner_id, pipeline_id,
            stage_id, status, position, closed_at, expected_close, fields, score, created_at,
            updated_at)
        SELECT i, 'Deal ' || i, {VALUE}, 'EUR', {CONTACT}, {OWNER}, {PIPELINE}, {STAGE},
            {STATUS}, i,
            CASE WHEN i % 10 >= 6 THEN {ts(CLOSED_AGO)} END,
            CASE WHEN i % 10 < 6 THEN date({EPOCH} + {CLOSE_DAYS} * 86400, 'unixepoch') END,
            '{{}}', 0, {ts(CREATED_AGO)}, {ts(CREATED_AGO)}
        FROM n"""
    )
    conn.execute(
        "INSERT INTO deal_contacts (deal_id, contact_id, created_at) "
        "SELECT id, contact_id, created_at FROM deals"
    )
    conn.execute(
        """INSERT INTO deal_stage_visits (deal_id, pipeline_id, stage_id, entered_at, left_at)
        SELECT d.id, d.pipeline_id, s.id,
            strftime('%Y-%m-%d %H:%M:%S', d.created_at, '+' || s.position || ' hours') || '.000000',
            CASE WHEN s.position < c.position THEN strftime('%Y-%m-%d %H:%M:%S', d.created_at,
                '+' || (s.position + 1) || ' hours') || '.000000' END
        FROM deals d JOIN stages c ON c.id = d.stage_id
        JOIN stages s ON s.pipeline_id = d.pipeline_id AND s.position <= c.position"""
    )
    conn.execute(
        """INSERT INTO activities (contact_id, deal_id, type, cause, data, occurred_at, machine)
        SELECT contact_id, id, 'deal_created', 'import', '{}', created_at, 0 FROM deals"""
    )
    for sql in indexes:
        conn.execute(sql)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    raw.close()
    with database.session() as session:
        totals.rebuild(session)  # the board's per-stage totals of the generated deals
        for pipeline_id in range(1, PIPELINES + 1):  # the funnel's furthest stages
            reach.rebuild(session, pipeline_id)
    print(f"  SQLite loaded in {time.perf_counter() - started:.0f} s")
    return database


def load_postgres(url: str) -> Database:
    database = create_database(url)
    upgrade(database)
    started = time.perf_counter()
    tables = ("deals", "deal_contacts", "deal_stage_visits", "activities")
    with database.engine.begin() as conn:
        indexes = conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:t) "
                "AND indexname LIKE 'ix_%'"
            ),
            {"t": list(tables)},
        ).all()
        for index_name, _ in indexes:
            conn.execute(text(f'DROP INDEX "{index_name}"'))

        def execute(sql: str) -> object:
            return conn.execute(text(sql))

        def ts(seconds_ago: str) -> str:
            return f"to_timestamp({EPOCH} - ({seconds_ago}))"

        stamp = f"to_timestamp({EPOCH})"
        _setup_rows(conn, stamp, execute)
        execute(
            f"""INSERT INTO contacts (id, email, status, score, fields, created_at, updated_at)
            SELECT i, 'user' || i || '@example.com', 'subscribed', 0, '{{}}', {stamp}, {stamp}
            FROM generate_series(1, {CONTACTS}::bigint) AS i"""
        )
        execute(
            f"""INSERT INTO deals (id, title, value, currency, contact_id, owner_id, pipeline_id,
                stage_id, status, position, closed_at, expected_close, fields, score, created_at,
                updated_at)
            SELECT i, 'Deal ' || i, {VALUE}, 'EUR', {CONTACT}, {OWNER}, {PIPELINE}, {STAGE},
                {STATUS}, i,
                CASE WHEN i % 10 >= 6 THEN {ts(CLOSED_AGO)} END,
                CASE WHEN i % 10 < 6 THEN (to_timestamp({EPOCH}) + {CLOSE_DAYS} * interval '1 day')::date END,
                '{{}}', 0, {ts(CREATED_AGO)}, {ts(CREATED_AGO)}
            FROM generate_series(1, {DEALS}::bigint) AS i"""
        )
        execute(
            "INSERT INTO deal_contacts (deal_id, contact_id, created_at) "
            "SELECT id, contact_id, created_at FROM deals"
        )
        execute(
            """INSERT INTO deal_stage_visits (deal_id, pipeline_id, stage_id, entered_at, left_at)
            SELECT d.id, d.pipeline_id, s.id, d.created_at + s.position * interval '1 hour',
                CASE WHEN s.position < c.position
                    THEN d.created_at + (s.position + 1) * interval '1 hour' END
            FROM deals d JOIN stages c ON c.id = d.stage_id
            JOIN stages s ON s.pipeline_id = d.pipeline_id AND s.position <= c.position"""
        )
        execute(
            """INSERT INTO activities (contact_id, deal_id, type, cause, data, occurred_at, machine)
            SELECT contact_id, id, 'deal_created', 'import', '{}', created_at, false FROM deals"""
        )
        for table in ("pipelines", "stages", "users", "contacts", "deals", "deal_stage_visits"):
            execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        for _, definition in indexes:
            execute(definition)
    with database.session() as session:
        totals.rebuild(session)  # the board's per-stage totals of the generated deals
        for pipeline_id in range(1, PIPELINES + 1):  # the funnel's furthest stages
            reach.rebuild(session, pipeline_id)
    analyze(database.engine)
    print(f"  PostgreSQL loaded in {time.perf_counter() - started:.0f} s")
    return database


# ---- the figures -----------------------------------------------------------------------------


def run_figures(database: Database, label: str) -> None:
    def scalar(statement: object) -> object:
        with database.session() as session:
            return session.execute(statement).scalar()  # type: ignore[call-overload]

    def read(work: Callable[..., object], *args: object, **kwargs: object) -> Callable[[], object]:
        def run() -> object:
            with database.session() as session:
                return work(session, *args, **kwargs)

        return run

    pipeline = 1
    board = read(reports.board, pipeline, cards=50)
    answer = board()
    assert isinstance(answer, dict) and sum(s["count"] for s in answer["stages"]) > 0
    deals_of_pipeline = select(func.count(), func.sum(Deal.value)).where(
        Deal.pipeline_id == pipeline, Deal.status == "open"
    )
    figure(
        f"{label}: board of one pipeline (per-stage sums + 50 cards each)",
        board,
        lambda: scalar(deals_of_pipeline),  # one bare count-and-sum over its open deals
        "<= 50 ms",
    )
    visits = text(f"SELECT count(*) FROM deal_stage_visits WHERE pipeline_id = {pipeline}")
    figure(
        f"{label}: conversion funnel of one pipeline",
        read(reports.funnel, pipeline),
        lambda: scalar(visits),  # a bare count of the visits it reads
        "<= 500 ms",
    )
    forecast_rows = deals_of_pipeline.where(Deal.expected_close.is_not(None))
    figure(
        f"{label}: forecast of one pipeline",
        read(reports.forecast, pipeline_id=pipeline),
        lambda: scalar(forecast_rows),  # a bare count-and-sum of the deals it reads
        "<= 500 ms",
    )
    figure(
        f"{label}: time in stage of one pipeline",
        read(reports.time_in_stage, pipeline),
        lambda: scalar(visits),
        repeat=3,
    )

    bench_move(database, label)
    bench_scoring(database, label)


def _stage(database: Database, position: int) -> Stage:
    with database.session() as session:
        stage = session.scalar(
            select(Stage).where(Stage.pipeline_id == 1, Stage.position == position)
        )
        assert stage is not None
        return stage


def bench_move(database: Database, label: str, note: str = "") -> None:
    """Move the same deals there with the package and match their activities against the
    automations' triggers (the engine's matching pass, as the worker runs it after the
    commit) — timed — and back with a bare UPDATE of their stage (the baseline), five times."""
    here, there = _stage(database, 1), _stage(database, 4)
    engine = Engine(database, FakeClock(NOW))
    engine.match_triggers()  # the activity cursor starts at the newest activity
    with database.session() as session:
        query = select(Deal.id).where(Deal.stage_id == here.id).order_by(Deal.id).limit(MOVED)
        ids = list(session.scalars(query))
    back = text(f"UPDATE deals SET stage_id = {here.id} WHERE id IN ({', '.join(map(str, ids))})")
    times, cpus, bare = [], [], []
    for _ in range(5):
        start, cpu = time.perf_counter(), time.process_time()
        with database.session() as session:
            moved = moves.move_deal_ids(session, ids, there, now=NOW, cause="api")
        while engine.match_triggers().matched:
            pass
        times.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        assert moved == len(ids), moved
        start = time.perf_counter()
        with database.session() as session:
            session.execute(back)
        bare.append(time.perf_counter() - start)
    report(
        f"{label}: bulk move of {len(ids):,} deals, activities matched{note}",
        statistics.median(times) * 1000,
        "ms",
        statistics.median(bare) * 1000,
        "<= 1000 ms",
    )
    print(
        f"{'':<58} baseline: the bare UPDATE of their stage, "
        f"{statistics.median(bare) * 1000:,.0f} ms; CPU here {statistics.median(cpus) * 1000:,.0f} ms"
    )


def bench_scoring(database: Database, label: str) -> None:
    """A scoring rule recomputed over every deal: created (half the deals change score), then
    its threshold lowered a little (about 1% change). Baseline: the bare UPDATE ... FROM that
    writes every deal's score from the same condition (no activities, no bookkeeping)."""

    def bare(threshold: int) -> float:
        start = time.perf_counter()
        with database.session() as session:
            session.execute(
                text(
                    "UPDATE deals SET score = s.score FROM (SELECT id, CASE WHEN value >= "
                    f"{threshold} THEN 10 ELSE 0 END AS score FROM deals) AS s "
                    "WHERE deals.id = s.id"
                )
            )
        return DEALS / (time.perf_counter() - start)

    def changed(threshold: int) -> int:
        with database.session() as session:
            query = select(func.count()).select_from(Deal).where(Deal.value >= threshold)
            return int(session.scalar(query) or 0)

    lower = {"deal": {"field": "value", "op": "gte", "value": 4_950_000}}
    created, edited, baseline = [], [], []
    for round_ in range(3):
        start = time.perf_counter()
        with database.session() as session:
            rule = scoring.create_rule(session, f"big {round_}", RULE, 10, now=NOW, cause="api")
        created.append(DEALS / (time.perf_counter() - start))
        start = time.perf_counter()
        with database.session() as session:
            scoring.update_rule(session, session.merge(rule), now=NOW, condition=lower)
        edited.append(DEALS / (time.perf_counter() - start))
        baseline.append(bare(4_950_000))  # the scores the edited rule gave
        with database.session() as session:
            scoring.delete_rule(session, session.merge(rule), now=NOW, cause="api")
    base = statistics.median(baseline)
    new, more = changed(5_000_000), changed(4_950_000) - changed(5_000_000)
    report(
        f"{label}: new scoring rule over {DEALS:,} deals ({new:,} change)",
        statistics.median(created),
        "deals/s",
        base,
        ">= 200,000 deals/s",
    )
    report(
        f"{label}: the rule edited, recomputed ({more:,} change)",
        statistics.median(edited),
        "deals/s",
        base,
        ">= 200,000 deals/s",
    )
    print(f"{'':<58} baseline: bare UPDATE ... FROM of every deal's score, {base:,.0f} deals/s")
    with database.session() as session:
        scoring.create_rule(
            session,
            "stage",
            {"deal": {"field": "stage", "op": "eq", "value": _stage(database, 4).id}},
            5,
            now=NOW,
            cause="api",
        )
    bench_move(database, label, " (a stage scoring rule)")


def automation_latency() -> None:
    """Stage change -> automation action, through a running `tidings serve` (fresh databases)."""
    bench_stage_latency(f"sqlite:///{fresh_sqlite('deals_serve.db')}", "SQLite")
    with scratch_postgres("deals_serve") as url:
        if url is not None:
            bench_stage_latency(url, "PostgreSQL")


def main() -> None:
    if "--only-automation" in sys.argv:
        automation_latency()
        return
    print(f"{DEALS:,} deals in {PIPELINES} pipelines of {STAGES} stages, {CONTACTS:,} contacts")
    automation_latency()
    sqlite = load_sqlite()
    run_figures(sqlite, "SQLite")
    sqlite.dispose()

    with scratch_postgres("deals") as url:
        if url is not None:
            postgres = load_postgres(url)
            run_figures(postgres, "PostgreSQL")
            postgres.dispose()


if __name__ == "__main__":
    main()
