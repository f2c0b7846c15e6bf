"""Advancing system runs: each due run is claimed with a lease (a conditional UPDATE, so two
workers never advance one run) and walked step by step until it waits or ends.

Steps: a job step runs the job to its end (tidings.jobs.runner.run_job, keyed by run and step,
so a run resumed after a crash finds its job instead of starting another); `if` tests the
previous job's outcome; a wait sets `wake_at`; notify writes an internal notification (the
effects table delivers it, with retries) holding the previous job's summary and output."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from tidings.automations import definition as d
from tidings.automations.definition import Definition, parse_definition
from tidings.automations.definition.system_steps import JobIfStep, JobStep
from tidings.automations.models import Automation, AutomationVersion, Effect
from tidings.clock import Clock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.errors import TidingsError
from tidings.jobs import runner
from tidings.jobs.specs import parse_spec
from tidings.system.models import SystemRun

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
MAX_HOPS = 100


def due_runs(database: Database, now: datetime, limit: int = 100) -> list[int]:
    with database.session() as session:
        return list(
            session.scalars(
                select(SystemRun.id)
                .where(SystemRun.state.in_(("ready", "waiting")), SystemRun.wake_at <= now)
                .where(or_(SystemRun.lease_until.is_(None), SystemRun.lease_until < now))
                .order_by(SystemRun.wake_at, SystemRun.id)
                .limit(limit)
            )
        )


def claim(database: Database, run_id: int, now: datetime) -> bool:
    with database.session() as session:
        claimed = session.execute(
            update(SystemRun)
            .where(SystemRun.id == run_id, SystemRun.state.in_(("ready", "waiting")))
            .where(or_(SystemRun.lease_until.is_(None), SystemRun.lease_until < now))
            .values(lease_until=now + LEASE)
        )
        return bool(getattr(claimed, "rowcount", 0))


def advance_due(database: Database, clock: Clock, settings: Settings) -> int:
    """Advance every due run this worker can claim; the number advanced."""
    advanced = 0
    for run_id in due_runs(database, clock.now()):
        if claim(database, run_id, clock.now()):
            advance(database, run_id, clock, settings)
            advanced += 1
    return advanced


def _load(database: Database, run_id: int) -> tuple[SystemRun, Definition, str, str]:
    with database.session() as session:
        run = session.get(SystemRun, run_id)
        assert run is not None
        automation = session.get(Automation, run.automation_id)
        data = session.scalar(
            select(AutomationVersion.definition).where(
                AutomationVersion.automation_id == run.automation_id,
                AutomationVersion.version == run.version,
            )
        )
        session.expunge(run)
        status = automation.status if automation is not None else "deleted"
        name = automation.name if automation is not None else str(run.automation_id)
        return run, parse_definition(data), status, name


def advance(database: Database, run_id: int, clock: Clock, settings: Settings) -> None:
    run, definition, status, name = _load(database, run_id)
    if status != "active":  # paused: the run waits where it is until resumed
        _save(database, run, state=run.state, release=True)
        return
    step_id: str | None = run.step
    for _ in range(MAX_HOPS):
        if step_id is None or step_id == d.END or not definition.has_step(step_id):
            _save(database, run, state="done", step=None, ended=clock.now())
            return
        step = definition.step(step_id)
        try:
            outcome = _step(database, run, definition, step, name, clock, settings)
        except TidingsError as exc:
            run.log = [*run.log, [step_id, f"failed: {exc.detail}"]]
            _save(database, run, state="failed", step=step_id, ended=clock.now())
            return
        run.log = [*run.log, [step_id, outcome[0]]]
        if outcome[0] == "waiting":
            _save(database, run, state="waiting", step=outcome[1], wake_at=outcome[2])
            return
        step_id = outcome[1]
        _save(database, run, state="ready", step=step_id, keep_lease=True)
    _save(database, run, state="failed", step=step_id, ended=clock.now())


Outcome = tuple[str, str | None, datetime | None]


def _step(
    database: Database,
    run: SystemRun,
    definition: Definition,
    step: Any,
    name: str,
    clock: Clock,
    settings: Settings,
) -> Outcome:
    now = clock.now()
    following = definition.next_of(step.id)
    if isinstance(step, JobStep):
        job = runner.run_job(
            database,
            parse_spec(step.job),
            clock=clock,
            settings=settings,
            requested_by=f"automation:{name}",
            trigger=f"system:{run.id}:{step.id}",
            automation=(run.automation_id, run.version),
        )
        run.last_job = job_summary(job)
        return str(job.status), following, None
    if isinstance(step, JobIfStep):
        holds = step.if_.holds(run.last_job)
        target = step.then if holds else step.else_
        return ("yes" if holds else "no"), target or following, None
    if isinstance(step, d.WaitStep):
        wait = step.wait
        wake = wait.until if wait.until is not None else now + (wait.duration or timedelta())
        return "waiting", following, wake
    if isinstance(step, d.NotifyAction):
        _notify(database, run, step, name, now)
        return "notified", following, None
    if isinstance(step, d.GotoStep):
        return "goto", step.goto, None
    return "end", d.END, None


def job_summary(job: Any) -> dict[str, Any]:
    return {
        "run_id": job.id,
        "kind": job.kind,
        "status": str(job.status),
        "read": job.rows_read,
        "written": job.rows_written,
        "rejected": job.rows_rejected,
        "skipped": job.rows_skipped,
        "detail": job.detail,
        "output_file": job.output_file,
    }


def _notify(
    database: Database, run: SystemRun, step: d.NotifyAction, name: str, now: datetime
) -> None:
    job = run.last_job
    lines = [step.body] if step.body else []
    if job is not None:
        lines.append(
            f"Job {job['kind']} #{job['run_id']}: {job['status']}; read {job['read']}, "
            f"written {job['written']}, rejected {job['rejected']}, skipped {job['skipped']}."
        )
        if job.get("detail"):
            lines.append(str(job["detail"]))
        if job.get("output_file"):
            lines.append(f"Output: /api/v1/jobs/runs/{job['run_id']}/output")
    with database.session() as session:
        key = f"system:{run.id}:{step.id}"
        if session.scalar(select(Effect.id).where(Effect.idempotency_key == key)) is not None:
            return  # written before a crash: once
        session.add(
            Effect(
                idempotency_key=key,
                kind="notify",
                enrolment_id=None,
                contact_id=None,
                target=step.to,
                payload={"subject": step.subject, "body": "\n".join(lines), "automation": name},
                status="pending",
                attempts=0,
                next_attempt_at=now,
                last_error=None,
                created_at=now,
                updated_at=now,
            )
        )


def _save(
    database: Database,
    run: SystemRun,
    *,
    state: str,
    step: str | None = None,
    wake_at: datetime | None = None,
    ended: datetime | None = None,
    release: bool = False,
    keep_lease: bool = False,
) -> None:
    values: dict[str, Any] = {"state": state, "last_job": run.last_job, "log": run.log}
    if not release:
        values["step"] = step
    if wake_at is not None:
        values["wake_at"] = wake_at
    if ended is not None:
        values["ended_at"] = ended
    if not keep_lease:
        values["lease_until"] = None
    with database.session() as session:
        session.execute(update(SystemRun).where(SystemRun.id == run.id).values(**values))
