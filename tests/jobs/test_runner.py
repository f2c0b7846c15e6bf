"""The runner: a run recorded from queued to its end, one run per trigger key, a
`job_finished` activity, and interrupted runs resumed (leases, dead owners, attempts)."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from sqlalchemy import update

from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.errors import ValidationFailed
from tidings.jobs import runner
from tidings.jobs.context import JobStatus, lease_owner
from tidings.jobs.models import JobRun
from tidings.jobs.specs import parse_spec, parse_yaml

from .helpers import add_contacts, finished_events, run

EXPORT = {"kind": "export", "export": {"type": "contacts"}}


def test_a_run_is_recorded_with_counts_and_a_finished_event(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    add_contacts(database, clock, 3)
    done = run(database, clock, settings, EXPORT, requested_by="cli")
    assert done.status == JobStatus.SUCCEEDED
    assert (done.rows_read, done.rows_written, done.rows_rejected) == (3, 3, 0)
    assert (done.progress_done, done.progress_total) == (3, 3)
    assert done.started_at == done.finished_at == clock.now()
    assert done.output_file == f"contacts-{done.id}.csv"
    assert done.lease_owner is None and done.attempts == 1
    [event] = finished_events(database)
    assert event["run_id"] == done.id and event["status"] == "succeeded"
    assert (event["kind"], event["written"]) == ("export", 3)


def test_one_run_per_trigger_key(database: Database, clock: FakeClock, settings: Settings) -> None:
    first = run(database, clock, settings, EXPORT, trigger="tick:1")
    again = run(database, clock, settings, EXPORT, trigger="tick:1")
    assert again.id == first.id
    assert len(finished_events(database)) == 1


def test_a_failing_job_is_recorded_failed_with_its_reason(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    spec = {"kind": "membership", "action": "add", "segment": "nope", "list": "News"}
    done = run(database, clock, settings, spec)
    assert done.status == JobStatus.FAILED
    assert done.detail is not None and "segment" in done.detail
    assert finished_events(database)[0]["status"] == "failed"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "nope"}, "kind:"),
        ({"kind": "export", "export": {"type": "contacts"}, "format": "xml"}, "format:"),
        ({"kind": "export", "export": {"type": "table"}}, "export.type:"),
        (
            {
                "kind": "export",
                "export": {"type": "events", "since": "2026-02-01T00:00:00Z", "until": "x"},
            },
            "export.until:",
        ),
        ({"kind": "send", "template": "t", "list": "a", "to": "a@b.c"}, "exactly one"),
        ({"kind": "hygiene", "action": "delete", "segment": "x"}, "reason:"),
        ({"kind": "membership", "action": "add", "segment": "x", "extra": 1}, "extra:"),
    ],
)
def test_a_bad_spec_names_its_path(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_spec(spec)
    assert message in error.value.detail


def test_yaml_specs() -> None:
    spec = parse_yaml("kind: export\nexport: {type: contacts}\ngzip: true\n")
    assert spec.kind == "export"
    with pytest.raises(ValidationFailed, match="not valid YAML"):
        parse_yaml("kind: [")


def _interrupted(database: Database, clock: FakeClock, owner: str, lease_left: float) -> int:
    """A run left `running` by `owner`, its lease running out in `lease_left` seconds."""
    with database.session() as session:
        queued = runner.create_run(session, parse_spec(EXPORT), clock=clock, requested_by="cli")
        session.flush()
        session.execute(
            update(JobRun)
            .where(JobRun.id == queued.id)
            .values(
                status="running",
                lease_owner=owner,
                lease_until=clock.now() + timedelta(seconds=lease_left),
                attempts=1,
                started_at=clock.now(),
            )
        )
        return queued.id


def test_a_run_of_a_dead_process_is_resumed_at_once(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    add_contacts(database, clock, 2)
    dead = f"{socket.gethostname()}:999999999:1"  # no such pid
    run_id = _interrupted(database, clock, dead, lease_left=600)
    [resumed] = runner.resume_unfinished(database, clock=clock, settings=settings)
    assert resumed.id == run_id and resumed.status == "succeeded" and resumed.attempts == 2


def test_a_run_held_elsewhere_waits_for_its_lease(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    run_id = _interrupted(database, clock, "other-host:1:1", lease_left=60)
    assert runner.resume_unfinished(database, clock=clock, settings=settings) == []
    clock.advance(seconds=61)
    [resumed] = runner.resume_unfinished(database, clock=clock, settings=settings)
    assert resumed.id == run_id and resumed.status == "succeeded"


def test_a_run_that_keeps_failing_is_given_up(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    run_id = _interrupted(database, clock, "other-host:1:1", lease_left=-1)
    with database.session() as session:
        session.execute(update(JobRun).where(JobRun.id == run_id).values(attempts=3))
    [given_up] = runner.resume_unfinished(database, clock=clock, settings=settings)
    assert given_up.status == "failed" and "gave up" in (given_up.detail or "")


def test_a_live_run_is_not_taken_twice(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    live = lease_owner()  # this very process: alive
    run_id = _interrupted(database, clock, live, lease_left=60)
    assert runner.unfinished(database, clock) == []
    assert runner.execute(database, run_id, clock=clock, settings=settings).status == "running"
