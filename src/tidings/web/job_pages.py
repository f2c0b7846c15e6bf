"""Jobs: the system automations (tidings.system.overview: trigger, next tick, last run,
counts; each links to its page, tidings.web.system_pages) and the job runs, newest first, with
their status, row counts, errors and output download (the same file
`GET /api/v1/jobs/runs/{id}/output` gives, here behind the page login)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from sqlalchemy import select

from tidings.api.deps import ClockDep, SettingsDep
from tidings.api.schemas import Id
from tidings.errors import NotFound
from tidings.jobs.models import JobRun
from tidings.system.overview import system_automations
from tidings.web.security import LoginDep, PageSessionDep, check_csrf
from tidings.web.templating import render

router = APIRouter(dependencies=[Depends(check_csrf)])
PAGE = 50


@router.get("/admin/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    query = select(JobRun).order_by(JobRun.id.desc()).limit(PAGE + 1)
    if before is not None:
        query = query.where(JobRun.id < before)
    runs = list(session.scalars(query))
    next_before = runs[PAGE - 1].id if len(runs) > PAGE else None
    context = {
        "runs": runs[:PAGE],
        "next_before": next_before,
        "system_automations": system_automations(session, clock.now()),
    }
    return render(request, "jobs.html", context, nav="jobs")


@router.get("/admin/jobs/{run_id}/output")
def job_output(
    run_id: Id, login: LoginDep, session: PageSessionDep, settings: SettingsDep
) -> FileResponse:
    run = session.get(JobRun, run_id)
    if run is None or not run.output_file:
        raise NotFound(f"job run {run_id} has no output file")
    path = settings.export_dir / Path(run.output_file).name
    if not path.is_file():
        raise NotFound(f"the output of job run {run_id} is no longer there (retention)")
    return FileResponse(path, filename=path.name)
