"""REST endpoints: job runs - list (filters, keyset pages, newest first), show, start, and
download the file a run wrote."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, BackgroundTasks, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.api.deps import ClockDep, DatabaseDep, SessionDep, SettingsDep
from tidings.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from tidings.api.schemas import Id, InputModel
from tidings.errors import NotFound, ValidationFailed
from tidings.jobs import runner
from tidings.jobs.context import JobStatus
from tidings.jobs.models import JobRun
from tidings.jobs.specs import KINDS, JobSpec, parse_spec

router = APIRouter(tags=["jobs"])


class JobRunIn(InputModel):
    """The job to run: `spec` (a JSON object) or `yaml` (the same as YAML text)."""

    spec: dict[str, Any] | None = None
    yaml_text: str | None = Field(default=None, alias="yaml", max_length=1_000_000)

    @model_validator(mode="after")
    def _one(self) -> JobRunIn:
        if (self.spec is None) == (self.yaml_text is None):
            raise ValueError("give exactly one of: spec, yaml")
        return self

    def parsed(self) -> JobSpec:
        if self.spec is not None:
            return parse_spec(self.spec, prefix="spec")
        try:
            data = yaml.safe_load(self.yaml_text or "")
        except yaml.YAMLError as exc:
            raise ValidationFailed(f"yaml: not valid YAML ({exc})") from None
        return parse_spec(data, prefix="yaml")


class Counts(BaseModel):
    read: int
    written: int
    rejected: int
    skipped: int


class Progress(BaseModel):
    done: int
    total: int | None


class JobRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    status: str
    spec: dict[str, Any]
    automation_id: int | None
    automation_version: int | None
    trigger_key: str | None
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    counts: Counts
    progress: Progress
    errors: list[dict[str, Any]]
    detail: str | None
    output_file: str | None

    @classmethod
    def of(cls, run: JobRun) -> JobRunOut:
        return cls(
            id=run.id,
            kind=run.kind,
            status=run.status,
            spec=run.spec,
            automation_id=run.automation_id,
            automation_version=run.automation_version,
            trigger_key=run.trigger_key,
            requested_by=run.requested_by,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            attempts=run.attempts,
            counts=Counts(
                read=run.rows_read,
                written=run.rows_written,
                rejected=run.rows_rejected,
                skipped=run.rows_skipped,
            ),
            progress=Progress(done=run.progress_done, total=run.progress_total),
            errors=run.errors or [],
            detail=run.detail,
            output_file=run.output_file,
        )


class JobRunPage(BaseModel):
    items: list[JobRunOut]
    next_cursor: str | None


def _get(session: Session, run_id: int) -> JobRun:
    run = session.get(JobRun, run_id)
    if run is None:
        raise NotFound(f"job run {run_id} does not exist")
    return run


@router.get("/jobs/runs")
def list_runs(
    session: SessionDep,
    status: Annotated[JobStatus | None, Query()] = None,
    kind: Annotated[str | None, Query(pattern="^(" + "|".join(KINDS) + ")$")] = None,
    since: datetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> JobRunPage:
    """Runs, newest first; `since` keeps runs created at or after it."""
    query = select(JobRun)
    if status is not None:
        query = query.where(JobRun.status == status.value)
    if kind is not None:
        query = query.where(JobRun.kind == kind)
    if since is not None:
        if since.tzinfo is None:
            raise ValidationFailed("since: needs a time zone (2026-03-01T00:00:00Z)")
        query = query.where(JobRun.created_at >= since)
    before = decode_cursor(cursor)
    if before is not None:
        query = query.where(JobRun.id < before)
    rows = list(session.scalars(query.order_by(JobRun.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return JobRunPage(
        items=[JobRunOut.of(r) for r in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )


@router.get("/jobs/runs/{run_id}")
def get_run(run_id: Id, session: SessionDep) -> JobRunOut:
    return JobRunOut.of(_get(session, run_id))


@router.post("/jobs/runs", status_code=202)
def start_run(
    body: JobRunIn,
    session: SessionDep,
    database: DatabaseDep,
    clock: ClockDep,
    settings: SettingsDep,
    background: BackgroundTasks,
) -> JobRunOut:
    """Check the spec and queue a run of it; it runs after the response (a worker resumes it
    if this process stops first). 202 with the queued run; poll GET /jobs/runs/{id}."""
    spec = body.parsed()
    runner.check_spec(session, spec, settings=settings, clock=clock)
    run = runner.create_run(session, spec, clock=clock, requested_by="api")
    session.flush()
    out = JobRunOut.of(run)
    # Committed here, not when the request ends: the run starts in another transaction.
    session.commit()
    background.add_task(runner.execute, database, out.id, clock=clock, settings=settings)
    return out


@router.get("/jobs/runs/{run_id}/output", response_class=FileResponse)
def download_output(run_id: Id, session: SessionDep, settings: SettingsDep) -> FileResponse:
    """The file the run wrote (404 when it wrote none, or the retention period deleted it)."""
    run = _get(session, run_id)
    if not run.output_file:
        raise NotFound(f"job run {run_id} has no output file")
    path: Path = settings.export_dir / Path(run.output_file).name
    if not path.is_file():
        raise NotFound(f"the output of job run {run_id} is no longer there (retention)")
    media = "application/gzip" if path.suffix == ".gz" else "text/csv"
    if ".ndjson" in path.name and path.suffix != ".gz":
        media = "application/x-ndjson"
    return FileResponse(path, media_type=media, filename=path.name)
