"""System runs as listed by the API and the CLI: filters (automation, state, since) and keyset
pages, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.automations.models import Automation
from tidings.errors import NotFound, ValidationFailed
from tidings.system.models import SystemRun

STATES = ("ready", "waiting", "done", "failed")


class SystemRunOut(BaseModel):
    id: int
    automation: str
    automation_id: int
    version: int
    tick_key: str
    state: str
    step: str | None
    wake_at: datetime
    started_at: datetime
    ended_at: datetime | None
    last_job: dict[str, Any] | None
    log: list[Any]


def list_runs(
    session: Session,
    *,
    automation: str | None = None,
    state: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> tuple[list[SystemRunOut], bool]:
    """A page of runs (newest first) and whether there are more."""
    query = select(SystemRun, Automation.name).join(
        Automation, Automation.id == SystemRun.automation_id
    )
    if automation is not None:
        query = query.where(Automation.name == automation)
    if state is not None:
        if state not in STATES:
            raise ValidationFailed(f"state: one of {', '.join(STATES)}")
        query = query.where(SystemRun.state == state)
    if since is not None:
        if since.tzinfo is None:
            raise ValidationFailed("since: needs a time zone (2026-03-01T00:00:00Z)")
        query = query.where(SystemRun.started_at >= since)
    if before_id is not None:
        query = query.where(SystemRun.id < before_id)
    rows = session.execute(query.order_by(SystemRun.id.desc()).limit(limit + 1)).all()
    return [_out(run, name) for run, name in rows[:limit]], len(rows) > limit


def get_run(session: Session, run_id: int) -> SystemRunOut:
    row = session.execute(
        select(SystemRun, Automation.name)
        .join(Automation, Automation.id == SystemRun.automation_id)
        .where(SystemRun.id == run_id)
    ).first()
    if row is None:
        raise NotFound(f"system run {run_id} does not exist")
    return _out(*row)


def _out(run: SystemRun, name: str) -> SystemRunOut:
    return SystemRunOut(
        id=run.id,
        automation=name,
        automation_id=run.automation_id,
        version=run.version,
        tick_key=run.tick_key,
        state=run.state,
        step=run.step,
        wake_at=run.wake_at,
        started_at=run.started_at,
        ended_at=run.ended_at,
        last_job=run.last_job,
        log=list(run.log or []),
    )
