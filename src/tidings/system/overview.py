"""System automations as the admin shows them: each with its status, its trigger in words, the
next schedule tick (schedule.next_tick, as the scheduler computes it), its last run and its run
counts by state; and the job runs a page of system runs started, step by step."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from tidings.automations.definition import Definition, parse_definition
from tidings.automations.definition.system_steps import (
    ImportFinishedTrigger,
    JobFinishedTrigger,
    ScheduleTrigger,
)
from tidings.automations.models import Automation
from tidings.jobs.models import JobRun
from tidings.system.listing import SystemRunOut
from tidings.system.models import SystemRun
from tidings.system.schedule import next_tick
from tidings.system.starts import with_definitions

STATUS_WORDS = {"succeeded": "succeeds", "failed": "fails", "any": "ends"}


@dataclass(slots=True)
class SystemAutomationView:
    id: int
    name: str
    status: str
    version: int
    definition: Definition
    trigger: str
    next_tick: datetime | None
    last_run: SystemRun | None = None
    runs: dict[str, int] = field(default_factory=dict)

    @property
    def last_error(self) -> str | None:
        run = self.last_run
        return run_error(run.log, run.last_job) if run is not None else None


def describe_trigger(trigger: object) -> str:
    """A system trigger in words: "cron 0 6 * * MON (Europe/Berlin)", "when an export job
    succeeds", ..."""
    if isinstance(trigger, ScheduleTrigger):
        if trigger.every is not None:
            return f"every {trigger.every} minutes"
        skip = ", missed ticks skipped" if trigger.catch_up == "skip" else ""
        return f"cron {trigger.cron} ({trigger.timezone}){skip}"
    kind = getattr(trigger, "type", "")
    verb = STATUS_WORDS.get(getattr(trigger, "status", "succeeded"), "ends")
    if isinstance(trigger, JobFinishedTrigger):
        job = f"{trigger.job} job" if trigger.job else "job"
        by = f" of {trigger.automation!r}" if trigger.automation else ""
        return f"when a{'n' if job[0] in 'aeiou' else ''} {job}{by} {verb}"
    if isinstance(trigger, ImportFinishedTrigger):
        share = f" with at least {trigger.min_percent:g} % imported" if trigger.min_percent else ""
        return f"when an import {verb}{share}"
    if kind == "broadcast_finished":
        return f"when a broadcast (send job) {verb}"
    if kind == "export_finished":
        return f"when an export {verb}"
    return "no trigger"


def run_error(log: Sequence[Any], last_job: dict[str, Any] | None) -> str | None:
    """Why a run failed (its failed step, from its log), or the detail of the failed job it
    last ran."""
    for entry in reversed(log or []):
        outcome = str(entry[-1]) if isinstance(entry, list | tuple) and entry else ""
        if outcome.startswith("failed:"):
            return outcome.removeprefix("failed:").strip()
    job = last_job or {}
    if job.get("status") == "failed":
        return str(job.get("detail") or "the job failed")
    return None


def _views(
    session: Session, query_filter: ColumnElement[bool] | None, now: datetime
) -> list[SystemAutomationView]:
    query = with_definitions()
    if query_filter is not None:
        query = query.where(query_filter)
    views = []
    for automation, data in session.execute(query.order_by(Automation.name)).all():
        if data.get("kind") != "system":
            continue
        definition = parse_definition(data)
        trigger = definition.trigger
        tick = None
        if isinstance(trigger, ScheduleTrigger) and automation.status == "active":
            tick = next_tick(trigger, now)
        views.append(
            SystemAutomationView(
                automation.id,
                automation.name,
                automation.status,
                automation.current_version,
                definition,
                describe_trigger(trigger),
                tick,
            )
        )
    return views


def system_automations(session: Session, now: datetime) -> list[SystemAutomationView]:
    """Every system automation (active or paused), by name, with its last run and counts."""
    views = _views(session, None, now)
    _add_runs(session, views)
    return views


def system_automation(
    session: Session, automation_id: int, now: datetime
) -> SystemAutomationView | None:
    """One automation's view, or None when it is not a system automation."""
    views = _views(session, Automation.id == automation_id, now)
    _add_runs(session, views)
    return views[0] if views else None


def _add_runs(session: Session, views: list[SystemAutomationView]) -> None:
    if not views:
        return
    ids = [v.id for v in views]
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for automation_id, state, n in session.execute(
        select(SystemRun.automation_id, SystemRun.state, func.count())
        .where(SystemRun.automation_id.in_(ids))
        .group_by(SystemRun.automation_id, SystemRun.state)
    ):
        counts[automation_id][state] = int(n)
    latest = (
        select(func.max(SystemRun.id))
        .where(SystemRun.automation_id.in_(ids))
        .group_by(SystemRun.automation_id)
    )
    last = {
        r.automation_id: r
        for r in session.scalars(select(SystemRun).where(SystemRun.id.in_(latest)))
    }
    for view in views:
        view.runs = counts.get(view.id, {})
        view.last_run = last.get(view.id)


def job_runs_of(session: Session, runs: Sequence[SystemRunOut]) -> dict[int, list[JobRun]]:
    """The job runs each system run started, in the order they were made. A job step's run is
    keyed `system:<run>:<step>` (unique): the keys of the steps each run logged and of the step
    it is at are looked up in that index, one IN for the whole page."""
    keys = {
        f"system:{run.id}:{step}"
        for run in runs
        for step in [
            *(entry[0] for entry in run.log if isinstance(entry, list) and entry),
            run.step,
        ]
        if step
    }
    if not keys:
        return {}
    found: dict[int, list[JobRun]] = defaultdict(list)
    query = select(JobRun).where(JobRun.trigger_key.in_(sorted(keys))).order_by(JobRun.id)
    for job in session.scalars(query):
        found[int(str(job.trigger_key).split(":")[1])].append(job)
    return dict(found)
