"""System runs: schedule ticks exactly once (several workers, a missed tick at start-up), job
steps, if on the outcome, waits, notify, and chaining on job_finished."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from tidings.automations.models import Effect
from tidings.automations.service import by_name, create_automation, set_status, update_automation
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.jobs.models import JobRun
from tidings.system.models import SystemRun, SystemTick
from tidings.system.scheduler import SystemScheduler

START = datetime(2026, 3, 2, 5, 59, 30, tzinfo=UTC)
EXPORT = {"kind": "export", "export": {"type": "contacts"}}


def _automation(database: Database, clock: FakeClock, data: dict[str, Any]) -> None:
    with database.session() as session:
        create_automation(session, {"kind": "system", **data}, now=clock.now())


def _every_minute(name: str = "tick", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "trigger": {"type": "schedule", "every": 1, **extra},
        "steps": [{"id": "tell", "action": "notify", "to": "ops@example.com", "subject": "t"}],
    }


def _runs(database: Database) -> list[SystemRun]:
    with database.session() as session:
        return list(session.scalars(select(SystemRun).order_by(SystemRun.id)))


def test_each_tick_starts_one_run_even_with_four_workers(
    database: Database, settings: Settings
) -> None:
    clock = FakeClock(START)
    _automation(database, clock, _every_minute())
    workers = [SystemScheduler(database, clock, settings) for _ in range(4)]
    for _ in range(3):
        clock.advance(minutes=1)
        threads = [threading.Thread(target=w.poll) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    runs = _runs(database)
    assert len(runs) == 3
    assert len({r.tick_key for r in runs}) == 3
    assert all(r.state == "done" for r in runs)
    with database.session() as session:
        assert len(session.scalars(select(Effect)).all()) == 3


def test_a_missed_tick_runs_once_at_start_up_or_is_skipped(
    database: Database, settings: Settings
) -> None:
    clock = FakeClock(START)
    hourly = {"type": "schedule", "every": 60}
    _automation(database, clock, {**_every_minute("once"), "trigger": hourly})
    _automation(
        database, clock, {**_every_minute("skip"), "trigger": {**hourly, "catch_up": "skip"}}
    )
    clock.advance(hours=2)  # 07:59:30: the 06:00 and 07:00 ticks were missed
    SystemScheduler(database, clock, settings).run_until_idle()
    runs = _runs(database)
    assert len(runs) == 1  # the catch_up: once automation, once
    with database.session() as session:
        statuses = sorted(session.scalars(select(SystemTick.status)))
    assert statuses == ["skipped", "started"]


def test_a_cron_tick_fires_at_local_time(database: Database, settings: Settings) -> None:
    clock = FakeClock(START)  # Monday 06:59:30 Berlin (UTC+1)
    data = _every_minute("weekly")
    data["trigger"] = {"type": "schedule", "cron": "0 7 * * MON", "timezone": "Europe/Berlin"}
    _automation(database, clock, data)
    scheduler = SystemScheduler(database, clock, settings)
    scheduler.poll()
    assert _runs(database) == []
    clock.advance(seconds=30)
    scheduler.poll()
    scheduler.poll()
    assert len(_runs(database)) == 1


def test_job_step_if_and_notify_and_a_chained_automation(
    database: Database, settings: Settings
) -> None:
    clock = FakeClock(START)
    _automation(
        database,
        clock,
        {
            "name": "nightly",
            "trigger": {"type": "schedule", "every": 60},
            "steps": [
                {"id": "export", "job": EXPORT},
                {"id": "ok", "if": {"status": "succeeded"}, "then": "tell", "else": "alarm"},
                {
                    "id": "tell",
                    "action": "notify",
                    "to": "ops@example.com",
                    "subject": "Export ready",
                    "next": "end",
                },
                {"id": "alarm", "action": "notify", "to": "ops@example.com", "subject": "Failed"},
            ],
        },
    )
    _automation(
        database,
        clock,
        {
            "name": "after",
            "trigger": {"type": "job_finished", "automation": "nightly"},
            "steps": [
                {"id": "wait", "wait": {"minutes": 5}},
                {"id": "tell", "action": "notify", "to": "b@example.com", "subject": "x"},
            ],
        },
    )
    clock.advance(minutes=1)  # 06:00:30: the hourly tick
    scheduler = SystemScheduler(database, clock, settings)
    scheduler.run_until_idle()
    with database.session() as session:
        jobs = session.scalars(select(JobRun)).all()
        effects = session.scalars(select(Effect).order_by(Effect.id)).all()
        assert [j.status for j in jobs] == ["succeeded"]
        assert [e.payload["subject"] for e in effects] == ["Export ready"]
        assert "Output: /api/v1/jobs/runs/" in effects[0].payload["body"]
    runs = _runs(database)
    assert [r.state for r in runs] == ["done", "waiting"]
    clock.advance(minutes=5)
    scheduler.run_until_idle()
    assert [r.state for r in _runs(database)] == ["done", "done"]


def test_a_failed_job_skips_the_chained_automation_and_takes_else(
    database: Database, settings: Settings
) -> None:
    clock = FakeClock(START)
    _automation(
        database,
        clock,
        {
            "name": "nightly",
            "trigger": {"type": "schedule", "every": 60},
            "steps": [
                {"id": "export", "job": EXPORT},
                {"id": "ok", "if": {"status": "failed"}, "then": "alarm"},
                {"id": "stop", "end": True},
                {"id": "alarm", "action": "notify", "to": "ops@example.com", "subject": "Failed"},
            ],
        },
    )
    _automation(
        database,
        clock,
        {
            "name": "after-fail",
            "trigger": {"type": "job_finished", "automation": "nightly", "status": "failed"},
            "steps": [{"id": "tell", "action": "notify", "to": "b@example.com", "subject": "x"}],
        },
    )
    clock.advance(minutes=1)
    SystemScheduler(database, clock, settings).run_until_idle()
    runs = _runs(database)
    # The job succeeded: the `failed` branch and the automation chained on failure stay idle.
    assert len(runs) == 1 and runs[0].state == "done"
    with database.session() as session:
        assert session.scalars(select(Effect)).all() == []


def test_a_paused_system_automation_starts_nothing(database: Database, settings: Settings) -> None:
    clock = FakeClock(START)
    _automation(database, clock, _every_minute("paused"))
    with database.session() as session:
        set_status(session, by_name(session, "paused"), "paused", now=clock.now())
    clock.advance(minutes=1)
    SystemScheduler(database, clock, settings).run_until_idle()
    assert _runs(database) == []


def test_a_running_scheduler_follows_edits_and_pauses(
    database: Database, settings: Settings
) -> None:
    """Definitions are parsed once per version and cached; a new version or a pause shows at
    the next poll all the same."""
    clock = FakeClock(START)
    _automation(database, clock, _every_minute("edited"))
    scheduler = SystemScheduler(database, clock, settings)
    clock.advance(minutes=1)
    scheduler.poll()
    assert len(_runs(database)) == 1
    with database.session() as session:
        hourly = {**_every_minute("edited"), "trigger": {"type": "schedule", "every": 60}}
        update_automation(
            session, by_name(session, "edited"), {"kind": "system", **hourly}, now=clock.now()
        )
    clock.advance(minutes=1)  # 06:01:30: a minute tick, not an hour's
    scheduler.poll()
    assert len(_runs(database)) == 1
    with database.session() as session:
        set_status(session, by_name(session, "edited"), "paused", now=clock.now())
    clock.advance(hours=1)
    scheduler.poll()
    assert len(_runs(database)) == 1
