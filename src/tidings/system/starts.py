"""Starting system runs, exactly once per tick or finished event.

A start is a `system_ticks` row with a unique key and its `system_runs` row, in one
transaction (a savepoint): when several workers see the same tick, one insert wins and the
others' fail on the key and start nothing. Only the latest due tick of a schedule is looked at,
so ticks missed while no worker ran give one run at start-up (`catch_up: once`) or a skipped
tick (`catch_up: skip`). Finished events are the `job_finished` activities after a cursor."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.automations.definition import Definition, parse_definition
from tidings.automations.definition.system_steps import (
    BroadcastFinishedTrigger,
    ExportFinishedTrigger,
    ImportFinishedTrigger,
    JobFinishedTrigger,
    ScheduleTrigger,
)
from tidings.automations.models import Automation, AutomationVersion, EngineState
from tidings.automations.registry import Registry
from tidings.errors import Conflict, NotFound, field_error
from tidings.jobs.runner import JOB_FINISHED
from tidings.system.models import SystemRun, SystemTick
from tidings.system.schedule import latest_tick

# A tick older than this when first seen was missed (no worker ran at its time).
MISSED_AFTER = timedelta(minutes=1)
CURSOR = "system.events"
EVENT_BATCH = 1000
KEY = re.compile(r"[A-Za-z0-9_-]{1,100}")


@dataclass(frozen=True, slots=True)
class SystemAutomation:
    id: int
    name: str
    version: int
    created_at: datetime
    definition: Definition


def _system_automation(automation: Automation, data: dict[str, Any]) -> SystemAutomation:
    return SystemAutomation(
        automation.id,
        automation.name,
        automation.current_version,
        automation.created_at,
        parse_definition(data),
    )


def with_definitions() -> Select[tuple[Automation, Any]]:
    """Automations with their current version's definition."""
    return select(Automation, AutomationVersion.definition).join(
        AutomationVersion,
        (AutomationVersion.automation_id == Automation.id)
        & (AutomationVersion.version == Automation.current_version),
    )


def active_system_automations(session: Session, registry: Registry) -> list[SystemAutomation]:
    """The active `kind: system` automations, each version parsed once (the registry keeps
    versions forever; a poll only re-reads the small automations table)."""
    snapshot = registry.refresh(session)
    system = [loaded for loaded in snapshot.current.values() if loaded.definition.kind == "system"]
    if not system:
        return []
    ids = [loaded.automation_id for loaded in system]
    rows = session.execute(
        select(Automation.id, Automation.created_at).where(Automation.id.in_(ids))
    ).all()
    created = {automation_id: at for automation_id, at in rows}
    return [
        SystemAutomation(
            loaded.automation_id,
            loaded.name,
            loaded.version,
            created[loaded.automation_id],
            loaded.definition,
        )
        for loaded in system
    ]


def new_run(automation: SystemAutomation, key: str, now: datetime) -> SystemRun:
    """A run at the automation's first step, ready now; `key` is unique among runs (a tick's
    or a run-now request's)."""
    return SystemRun(
        automation_id=automation.id,
        version=automation.version,
        tick_key=key,
        state="ready",
        step=automation.definition.steps[0].id,
        wake_at=now,
        last_job=None,
        log=[],
        started_at=now,
    )


def start(
    session: Session,
    automation: SystemAutomation,
    key: str,
    due: datetime,
    now: datetime,
    *,
    skipped: bool = False,
) -> bool:
    """Record the tick `key` and (unless skipped) its run; False when it was already there."""
    try:
        with session.begin_nested():
            session.add(
                SystemTick(
                    key=key,
                    automation_id=automation.id,
                    due_at=due,
                    status="skipped" if skipped else "started",
                    created_at=now,
                )
            )
            if not skipped:
                session.add(new_run(automation, key, now))
    except IntegrityError:  # another worker recorded this tick first
        return False
    return not skipped


def start_now(session: Session, automation_id: int, *, key: str, now: datetime) -> tuple[int, bool]:
    """Start a run of an active system automation on demand ("run now"). `key` names the
    request (a form's one-time token, an API client's idempotency key): the same request
    repeated, or raced by two workers, starts one run, keyed `manual:<automation>:<key>` in the
    unique run key. No tick is recorded, so the schedule's own ticks are not disturbed.
    Returns the run's id and whether this call started it."""
    if not KEY.fullmatch(key):
        raise field_error("key", "1 to 100 letters, digits, '-' or '_'")
    run_key = f"manual:{automation_id}:{key}"
    existing = session.scalar(select(SystemRun.id).where(SystemRun.tick_key == run_key))
    if existing is not None:
        return existing, False
    row = session.execute(with_definitions().where(Automation.id == automation_id)).first()
    if row is None:
        raise NotFound(f"automation {automation_id} does not exist")
    automation, data = row
    if data.get("kind") != "system":
        raise Conflict(f"automation {automation.name!r} is not a system automation")
    if automation.status != "active":
        raise Conflict(f"automation {automation.name!r} is paused: resume it to run it")
    run = new_run(_system_automation(automation, data), run_key, now)
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:  # the same request, a moment earlier, elsewhere
        found = session.scalar(select(SystemRun.id).where(SystemRun.tick_key == run_key))
        assert found is not None
        return found, False
    return run.id, True


def start_scheduled(
    session: Session,
    automations: list[SystemAutomation],
    now: datetime,
    recorded: dict[int, datetime] | None = None,
) -> int:
    """Start each schedule's latest due tick unless it is recorded. `recorded` is the caller's
    memory of each automation's newest recorded tick (ticks only move forward), so a round in
    which no new tick fell due asks the database nothing."""
    recorded = {} if recorded is None else recorded
    started = 0
    for automation in automations:
        trigger = automation.definition.trigger
        if not isinstance(trigger, ScheduleTrigger):
            continue
        due = latest_tick(trigger, now)
        if due < automation.created_at:
            continue
        known = recorded.get(automation.id)
        if known is not None and due <= known:
            continue
        last = session.scalar(
            select(func.max(SystemTick.due_at)).where(SystemTick.automation_id == automation.id)
        )
        if last is not None and due <= last:
            recorded[automation.id] = last
            continue
        missed = now - due > MISSED_AFTER
        key = f"schedule:{automation.id}:{due.isoformat()}"
        skip = missed and trigger.catch_up == "skip"
        started += start(session, automation, key, due, now, skipped=skip)
    return started


def event_matches(trigger: Any, data: dict[str, Any], names: dict[int, str]) -> bool:
    status = data.get("status")
    kind = data.get("kind")
    wanted = getattr(trigger, "status", "any")
    if wanted != "any" and status != wanted:
        return False  # a chained automation is skipped when the job before it failed
    if isinstance(trigger, JobFinishedTrigger):
        by = names.get(data.get("automation_id") or 0)
        return (trigger.job is None or trigger.job == kind) and (
            trigger.automation is None or trigger.automation == by
        )
    if isinstance(trigger, BroadcastFinishedTrigger):
        return kind == "send"
    if isinstance(trigger, ExportFinishedTrigger):
        return kind == "export"
    if isinstance(trigger, ImportFinishedTrigger):
        read = int(data.get("read") or 0)
        share = 100.0 * int(data.get("written") or 0) / read if read else 0.0
        return kind == "import" and (share >= trigger.min_percent or trigger.min_percent == 0)
    return False


def start_from_events(session: Session, automations: list[SystemAutomation], now: datetime) -> int:
    """Runs for the `job_finished` activities after the cursor; the cursor moves past them."""
    listening = [a for a in automations if not isinstance(a.definition.trigger, ScheduleTrigger)]
    state = session.get(EngineState, CURSOR)
    after = int(state.value.get("id", 0)) if state is not None else 0
    rows = session.execute(
        select(Activity.id, Activity.data, Activity.occurred_at)
        .where(Activity.type == JOB_FINISHED, Activity.id > after)
        .order_by(Activity.id)
        .limit(EVENT_BATCH)
    ).all()
    if not rows:
        return 0
    names: dict[int, str] = {
        i: n for i, n in session.execute(select(Automation.id, Automation.name))
    }
    started = 0
    for activity_id, data, occurred_at in rows:
        for automation in listening:
            if occurred_at < automation.created_at or automation.definition.trigger is None:
                continue
            if event_matches(automation.definition.trigger, data or {}, names):
                key = f"event:{automation.id}:{activity_id}"
                started += start(session, automation, key, occurred_at, now)
    last = rows[-1][0]
    if state is None:
        try:
            with session.begin_nested():
                session.add(EngineState(key=CURSOR, value={"id": last}))
        except IntegrityError:  # another worker wrote the first cursor; the ticks are unique
            pass
    elif int(state.value.get("id", 0)) < last:
        state.value = {"id": last}
    return started
