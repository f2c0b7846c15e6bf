"""System automations in the admin: the list on the jobs page (trigger in words, next tick, last
run, counts), a system automation's page (its runs, newest first in keyset pages, each with its
steps and the job runs it started, their counts, errors and outputs), pause and resume (the
automation page's form) and "run now", started through tidings.system once per form."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import uuid4

import yaml
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from tidings.api.deps import ClockDep
from tidings.api.schemas import Id
from tidings.automations import service as automations
from tidings.automations.models import Automation
from tidings.errors import TidingsError
from tidings.system.listing import list_runs
from tidings.system.overview import SystemAutomationView, job_runs_of, run_error, system_automation
from tidings.system.starts import start_now
from tidings.web.security import LoginDep, PageSessionDep, check_csrf
from tidings.web.templating import field_errors, render

router = APIRouter(dependencies=[Depends(check_csrf)])
RUNS = 25


def is_system(session: Session, automation: Automation) -> bool:
    return automations.definition_of(session, automation).get("kind") == "system"


def system_page(
    request: Request,
    session: Session,
    view: SystemAutomationView,
    *,
    before: int | None = None,
    errors: dict[str, str] | None = None,
    note: str = "",
    status: int = 200,
) -> HTMLResponse:
    """The page of a system automation; `before` pages its runs (keyset, newest first)."""
    runs, more = list_runs(session, automation=view.name, before_id=before, limit=RUNS)
    jobs = job_runs_of(session, runs)
    automation = automations.get_automation(session, view.id)
    data = automations.definition_of(session, automation)
    context: dict[str, Any] = {
        "view": view,
        "automation": automation,
        "runs": [
            {"run": run, "jobs": jobs.get(run.id, []), "error": run_error(run.log, run.last_job)}
            for run in runs
        ],
        "next_before": runs[-1].id if more and runs else None,
        "run_key": uuid4().hex,  # one form, one run: a double submit sends the same key
        "yaml_text": yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
        "note": note,
    }
    return render(
        request,
        "system_automation.html",
        context,
        nav="automations",
        errors=errors,
        status=status,
    )


@router.post("/admin/automations/{automation_id}/run-now", response_model=None)
def run_now(
    request: Request,
    automation_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Start a run now; the key the page rendered makes a second submit of the same form start
    nothing more. The worker advances the run."""
    try:
        run_id, started = start_now(session, automation_id, key=key, now=clock.now())
    except TidingsError as exc:
        session.rollback()
        view = system_automation(session, automation_id, clock.now())
        if view is None:
            raise
        return system_page(
            request, session, view, errors=field_errors(exc, "key"), status=exc.status
        )
    outcome = "started" if started else "again"
    return RedirectResponse(f"/admin/automations/{automation_id}?{outcome}={run_id}", 303)
