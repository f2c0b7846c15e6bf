"""Issue 16: schedule precision of system automations (SQLite, and PostgreSQL from
TIDINGS_BENCH_POSTGRES_URL when reachable). BENCH_SYSTEM_AUTOMATIONS (default 100) system
automations on one-minute schedules run over BENCH_SYSTEM_MINUTES (default 10) simulated
minutes, with two schedulers polling once per simulated second (a fake clock): every tick must
start exactly one run, within 1 s of its tick. Printed: runs started, runs started twice, the
worst lag, and the wall time of one poll round (on average, and idle: no tick due, what most
rounds are) against a bare SELECT of the automations (the baseline, measured in the same run). `--quick` shrinks the sizes."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from _common import fresh_sqlite, report, scale, scratch_postgres
from sqlalchemy import func, select

from tidings.automations.models import Automation
from tidings.automations.service import create_automation
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db.engine import Database, create_database
from tidings.db.migrate import upgrade
from tidings.system.models import SystemRun, SystemTick
from tidings.system.scheduler import SystemScheduler

AUTOMATIONS = max(2, int(int(os.environ.get("BENCH_SYSTEM_AUTOMATIONS", "100")) * scale()))
MINUTES = max(2, int(int(os.environ.get("BENCH_SYSTEM_MINUTES", "10")) * min(1.0, scale() * 5)))
IDLE_ROUNDS = 200
START = datetime(2026, 3, 2, 5, 59, 59, tzinfo=UTC)


def _setup(database: Database, clock: FakeClock) -> None:
    with database.session() as session:
        for index in range(AUTOMATIONS):
            create_automation(
                session,
                {
                    "kind": "system",
                    "name": f"tick {index}",
                    "trigger": {"type": "schedule", "every": 1},
                    "steps": [{"id": "done", "end": True}],
                },
                now=clock.now(),
            )


def _bench(label: str, url: str) -> None:
    database = create_database(url)
    upgrade(database)
    clock = FakeClock(START)
    settings = Settings(database_url=url, secret_key="bench-secret-key")
    _setup(database, clock)
    schedulers = [SystemScheduler(database, clock, settings) for _ in range(2)]
    rounds = 0
    started = time.perf_counter()
    for _ in range(MINUTES * 60):
        clock.advance(seconds=1)
        for scheduler in schedulers:
            scheduler.poll()
            rounds += 1
    per_round = (time.perf_counter() - started) / rounds
    idle = time.perf_counter()
    for _ in range(IDLE_ROUNDS):  # the clock stands still: every tick is already recorded
        schedulers[0].poll()
    per_idle_round = (time.perf_counter() - idle) / IDLE_ROUNDS
    bare = time.perf_counter()
    for _ in range(rounds):
        with database.session() as session:
            session.execute(select(Automation.id, Automation.name)).all()
    baseline = (time.perf_counter() - bare) / rounds
    with database.session() as session:
        runs = session.scalar(select(func.count()).select_from(SystemRun)) or 0
        keys = session.scalar(select(func.count(func.distinct(SystemRun.tick_key)))) or 0
        lag = session.execute(
            select(SystemRun.started_at, SystemTick.due_at).join(
                SystemTick, SystemTick.key == SystemRun.tick_key
            )
        ).all()
    worst = max(((s - d) for s, d in lag), default=timedelta())
    report(f"{label}: runs started (expected {AUTOMATIONS * MINUTES:,})", runs, "runs")
    report(f"{label}: runs started twice", runs - keys, "runs", target="0")
    report(f"{label}: worst lag after its tick", worst.total_seconds(), "s", target="<= 1 s")
    report(f"{label}: one poll round (average)", per_round * 1000, "ms", baseline * 1000)
    report(f"{label}: one idle poll round", per_idle_round * 1000, "ms", baseline * 1000)
    database.dispose()


def main() -> None:
    print(f"{AUTOMATIONS} system automations, every minute, {MINUTES} simulated minutes")
    _bench("SQLite", f"sqlite:///{fresh_sqlite('system.db')}")
    with scratch_postgres("system") as url:
        if url is not None:
            _bench("PostgreSQL", url)


if __name__ == "__main__":
    main()
