"""Running jobs: create the run row, claim it with a lease, run the job, record the end.

    run = runner.run_job(database, spec, clock=clock, settings=settings)

Every run is a `job_runs` row before it does anything. A runner claims it by writing its
lease (owner, lease_until) with a conditional UPDATE, so two workers never run one run; the
job writes its effects and its checkpoint (state, counts, progress) in the same transactions,
so a run killed mid-way (kill -9) is resumed from its last checkpoint by `resume_unfinished`
and never does twice what was committed. A run that fails MAX_ATTEMPTS times is left failed.
The end of a run writes a `job_finished` activity (kind, status, counts) in the same
transaction, for system automations to chain on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidings.activities.service import Cause, record
from tidings.clock import Clock
from tidings.config import Settings, get_settings
from tidings.db.engine import Database
from tidings.errors import TidingsError
from tidings.jobs import dropfolder, export, hygiene, membership, send
from tidings.jobs.context import (
    JobContext,
    JobStatus,
    LeaseLost,
    Outcome,
    ProgressCallback,
    lease_owner,
    owner_is_gone,
)
from tidings.jobs.models import JobRun
from tidings.jobs.specs import JobSpec, parse_spec, spec_json

log = logging.getLogger(__name__)

JOB_FINISHED = "job_finished"
MAX_ATTEMPTS = 3

Handler = Callable[[JobContext], Outcome]
Check = Callable[[Session, Any, Settings, Any], None]
JOBS: dict[str, tuple[Handler, Check]] = {
    "send": (send.run, send.check),
    "export": (export.run, export.check),
    "import": (dropfolder.run, dropfolder.check),
    "membership": (membership.run, membership.check),
    "hygiene": (hygiene.run, hygiene.check),
}


def check_spec(session: Session, spec: JobSpec, *, settings: Settings, clock: Clock) -> None:
    """What can be checked before a run is made (the template, the list, the segment, the
    export folder, confirm_all): a ValidationFailed/NotFound naming the field, no run row."""
    JOBS[spec.kind][1](session, spec, settings, clock.now())


def create_run(
    session: Session,
    spec: JobSpec,
    *,
    clock: Clock,
    requested_by: str,
    trigger: str | None = None,
    automation: tuple[int, int] | None = None,
) -> JobRun:
    """A queued run of `spec`. With a trigger key (a schedule tick, a finished event), the run
    that key already started is returned instead: one run per key, however many workers ask."""
    if trigger is not None:
        existing = session.scalar(select(JobRun).where(JobRun.trigger_key == trigger))
        if existing is not None:
            return existing
    run = JobRun(
        automation_id=automation[0] if automation else None,
        automation_version=automation[1] if automation else None,
        kind=spec.kind,
        spec=spec_json(spec),
        trigger_key=trigger,
        requested_by=requested_by,
        status=JobStatus.QUEUED,
        created_at=clock.now(),
        attempts=0,
        rows_read=0,
        rows_written=0,
        rows_rejected=0,
        rows_skipped=0,
        progress_done=0,
        errors=[],
        state={},
    )
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:  # another worker made the run of this key first
        found = session.scalar(select(JobRun).where(JobRun.trigger_key == trigger))
        assert found is not None
        return found
    return run


def run_job(
    database: Database,
    spec: JobSpec,
    *,
    clock: Clock,
    settings: Settings | None = None,
    requested_by: str = "api",
    trigger: str | None = None,
    automation: tuple[int, int] | None = None,
    progress: ProgressCallback | None = None,
) -> JobRun:
    """Create a run of `spec` and run it to its end here; returns the finished run (or the
    run a trigger key had already started)."""
    settings = settings or get_settings()
    with database.session() as session:
        run = create_run(
            session,
            spec,
            clock=clock,
            requested_by=requested_by,
            trigger=trigger,
            automation=automation,
        )
        session.flush()
        run_id = run.id
    return execute(database, run_id, clock=clock, settings=settings, progress=progress)


def get_run(database: Database, run_id: int) -> JobRun:
    with database.session() as session:
        run = session.get(JobRun, run_id)
        assert run is not None
        return run


def _claim(database: Database, run_id: int, owner: str, clock: Clock, lease: float) -> bool:
    """Take the run if it is queued, or running under a lease that ran out or whose process
    on this host is gone. One conditional UPDATE: of two workers, one wins."""
    now = clock.now()
    with database.session() as session:
        row = session.execute(
            select(JobRun.status, JobRun.lease_owner, JobRun.lease_until, JobRun.attempts).where(
                JobRun.id == run_id
            )
        ).one_or_none()
        if row is None or not _takeable(row.status, row.lease_owner, row.lease_until, now):
            return False
        owner_match = (
            JobRun.lease_owner.is_(None)
            if row.lease_owner is None
            else JobRun.lease_owner == row.lease_owner
        )
        claimed = session.execute(
            update(JobRun)
            .where(JobRun.id == run_id, JobRun.attempts == row.attempts, owner_match)
            .values(
                status=JobStatus.RUNNING,
                lease_owner=owner,
                lease_until=now + timedelta(seconds=lease),
                attempts=JobRun.attempts + 1,
                started_at=func.coalesce(JobRun.started_at, now),
            )
        )
        return bool(claimed.rowcount)  # type: ignore[attr-defined]


def _takeable(status: str, owner: str | None, until: Any, now: Any) -> bool:
    if status == JobStatus.QUEUED:
        return True
    if status != JobStatus.RUNNING:
        return False
    return until is None or until <= now or owner_is_gone(owner)


def execute(
    database: Database,
    run_id: int,
    *,
    clock: Clock,
    settings: Settings,
    progress: ProgressCallback | None = None,
) -> JobRun:
    """Claim run `run_id` and run it (from its last checkpoint when it was interrupted).
    A run another worker holds is left alone; the run is returned as it stands."""
    owner = lease_owner()
    if not _claim(database, run_id, owner, clock, settings.job_lease_seconds):
        return get_run(database, run_id)
    run = get_run(database, run_id)
    if run.attempts > MAX_ATTEMPTS:
        _finish_failed(database, run_id, clock, f"gave up after {MAX_ATTEMPTS} attempts")
        return get_run(database, run_id)
    try:
        spec = parse_spec(run.spec)
    except TidingsError as exc:  # a spec stored by another version that this one refuses
        _finish_failed(database, run_id, clock, f"spec: {exc.detail}")
        return get_run(database, run_id)
    context = JobContext(
        database=database,
        clock=clock,
        settings=settings,
        run_id=run_id,
        spec=spec,
        requested_by=run.requested_by,
        owner=owner,
        state=dict(run.state or {}),
        read=run.rows_read,
        written=run.rows_written,
        rejected=run.rows_rejected,
        skipped=run.rows_skipped,
        done=run.progress_done,
        total=run.progress_total,
        errors=list(run.errors or []),
        on_progress=progress,
    )
    try:
        outcome = JOBS[run.kind][0](context)
    except LeaseLost:
        log.warning("job run %s was taken over by another worker", run_id)
        return get_run(database, run_id)
    except TidingsError as exc:
        _finish(database, context, JobStatus.FAILED, Outcome(detail=exc.detail))
    except Exception as exc:  # a bug or a lost database: recorded on the run, not raised
        log.exception("job run %s failed", run_id)
        _finish(database, context, JobStatus.FAILED, Outcome(detail=f"internal error: {exc!r}"))
    else:
        status = JobStatus.PARTIAL if context.rejected or context.errors else JobStatus.SUCCEEDED
        _finish(database, context, status, outcome)
    return get_run(database, run_id)


def _finish(database: Database, context: JobContext, status: JobStatus, outcome: Outcome) -> None:
    with database.session() as session:
        try:
            context.checkpoint(session)
        except LeaseLost:
            return
        finish_run(session, context.run_id, status, outcome, now=context.now())


def _finish_failed(database: Database, run_id: int, clock: Clock, detail: str) -> None:
    with database.session() as session:
        finish_run(session, run_id, JobStatus.FAILED, Outcome(detail=detail), now=clock.now())


def finish_run(
    session: Session, run_id: int, status: JobStatus, outcome: Outcome, *, now: Any
) -> None:
    """End the run and write its `job_finished` activity, in one transaction."""
    session.execute(
        update(JobRun)
        .where(JobRun.id == run_id)
        .values(
            status=status,
            finished_at=now,
            lease_owner=None,
            lease_until=None,
            detail=outcome.detail,
            output_file=outcome.output_file,
        )
    )
    run = session.get(JobRun, run_id, populate_existing=True)
    assert run is not None
    record(
        session,
        None,
        JOB_FINISHED,
        Cause.SYSTEM,
        now,
        {
            "run_id": run_id,
            "kind": run.kind,
            "status": str(status),
            "automation_id": run.automation_id,
            "read": run.rows_read,
            "written": run.rows_written,
            "rejected": run.rows_rejected,
            "skipped": run.rows_skipped,
            "output_file": outcome.output_file,
        },
    )


def unfinished(database: Database, clock: Clock) -> list[int]:
    """Runs to pick up: queued, or running under a lease that ran out or a dead process."""
    now = clock.now()
    with database.session() as session:
        rows = session.execute(
            select(JobRun.id, JobRun.status, JobRun.lease_owner, JobRun.lease_until)
            .where(or_(JobRun.status == JobStatus.QUEUED, JobRun.status == JobStatus.RUNNING))
            .order_by(JobRun.id)
        ).all()
    return [r.id for r in rows if _takeable(r.status, r.lease_owner, r.lease_until, now)]


def resume_unfinished(
    database: Database, *, clock: Clock, settings: Settings | None = None
) -> list[JobRun]:
    """Run every run left queued or interrupted (a worker's start-up, and its polls)."""
    settings = settings or get_settings()
    return [
        execute(database, run_id, clock=clock, settings=settings)
        for run_id in unfinished(database, clock)
    ]
