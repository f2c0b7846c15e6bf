"""Automations: create, edit (a new version each time), pause, enrol, and report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from tidings.automations import enrolments
from tidings.automations.definition import Definition, parse_definition
from tidings.automations.enrolments import ACTIVE, enrol, is_active
from tidings.automations.journal import Journal, own_shard
from tidings.automations.matcher import ensure_cursor
from tidings.automations.models import (
    Automation,
    AutomationVersion,
    Enrolment,
    StepCount,
    StepLog,
)
from tidings.automations.registry import Loaded
from tidings.contacts.models import Contact, ListMembership, MailingList
from tidings.errors import Conflict, NotFound, ValidationFailed
from tidings.segments import condition_sql, parse_condition

STATUSES = ("active", "paused")


def get_automation(session: Session, automation_id: int) -> Automation:
    automation = session.get(Automation, automation_id)
    if automation is None:
        raise NotFound(f"automation {automation_id} does not exist")
    return automation


def by_name(session: Session, name: str) -> Automation:
    automation = session.scalar(select(Automation).where(Automation.name == name))
    if automation is None:
        raise NotFound(f"automation {name!r} does not exist")
    return automation


def by_name_or_id(session: Session, text: str) -> Automation:
    """The automation of that name or, failing that, of that id (as the CLI takes them)."""
    automation = session.scalar(select(Automation).where(Automation.name == text))
    if automation is None and text.isdigit() and len(text) < 19:
        automation = session.get(Automation, int(text))
    if automation is None:
        raise NotFound(f"automation {text!r} does not exist (neither a name nor an id)")
    return automation


def definition_of(
    session: Session, automation: Automation, version: int | None = None
) -> dict[str, Any]:
    row = session.scalar(
        select(AutomationVersion.definition).where(
            AutomationVersion.automation_id == automation.id,
            AutomationVersion.version == (version or automation.current_version),
        )
    )
    if row is None:
        raise NotFound(f"automation {automation.id} has no version {version}")
    return dict(row)


def loaded(session: Session, automation: Automation) -> Loaded:
    data = definition_of(session, automation)
    return Loaded(
        automation.id, automation.name, automation.current_version, parse_definition(data)
    )


def create_automation(
    session: Session, data: dict[str, Any], *, now: datetime, status: str = "active"
) -> Automation:
    """Validate and store a definition as version 1."""
    definition = parse_definition(data)
    _check_status(status)
    if session.scalar(select(Automation.id).where(Automation.name == definition.name)) is not None:
        raise Conflict(f"an automation named {definition.name!r} already exists")
    automation = Automation(
        name=definition.name, status=status, current_version=1, created_at=now, updated_at=now
    )
    session.add(automation)
    session.flush()
    session.add(
        AutomationVersion(automation_id=automation.id, version=1, definition=data, created_at=now)
    )
    session.flush()
    # From now on new activities are matched; older history starts nothing.
    ensure_cursor(session)
    return automation


def update_automation(
    session: Session,
    automation: Automation,
    data: dict[str, Any],
    *,
    now: datetime,
    step_mapping: dict[str, str] | None = None,
) -> Automation:
    """Store a new version. Running enrolments keep their version, except those waiting in a
    step named in `step_mapping`, which move to the new version at the mapped step. Removing a
    step in which contacts wait (of the current version) without mapping it is refused."""
    definition = parse_definition(data)
    mapping = step_mapping or {}
    new_ids = set(definition.step_ids())
    for old, new in mapping.items():
        if new not in new_ids:
            raise ValidationFailed(
                f"step_mapping.{old}: {new!r} is not a step of the new version",
                errors=[
                    {"field": f"step_mapping.{old}", "message": "unknown step in the new version"}
                ],
            )
    waiting = dict(
        session.execute(
            select(Enrolment.step, func.count())
            .where(
                Enrolment.automation_id == automation.id,
                is_active(),
                Enrolment.version == automation.current_version,
            )
            .group_by(Enrolment.step)
        ).all()
    )
    lost = {step: n for step, n in waiting.items() if step not in new_ids and step not in mapping}
    if lost:
        detail = ", ".join(f"{n} contact(s) in step {step!r}" for step, n in sorted(lost.items()))
        raise Conflict(
            f"cannot remove steps contacts are waiting in: {detail}; map them with step_mapping",
            errors=[
                {"field": f"steps.{s}", "message": f"{n} contact(s) waiting"}
                for s, n in lost.items()
            ],
        )
    if definition.name != automation.name:
        clash = session.scalar(select(Automation.id).where(Automation.name == definition.name))
        if clash is not None and clash != automation.id:
            raise Conflict(f"an automation named {definition.name!r} already exists")
        automation.name = definition.name
    version = automation.current_version + 1
    session.add(
        AutomationVersion(
            automation_id=automation.id, version=version, definition=data, created_at=now
        )
    )
    automation.current_version = version
    automation.updated_at = now
    session.flush()
    for old, new in mapping.items():
        session.execute(
            update(Enrolment)
            .where(
                Enrolment.automation_id == automation.id,
                is_active(),
                Enrolment.step == old,
            )
            .values(version=version, step=new, wait_until=None, wake_at=now)
        )
    return automation


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValidationFailed(f"status: must be one of {', '.join(STATUSES)}")


def set_status(session: Session, automation: Automation, status: str, *, now: datetime) -> None:
    _check_status(status)
    automation.status = status
    automation.updated_at = now
    session.flush()


def delete_automation(session: Session, automation: Automation) -> None:
    """Delete an automation, its versions, enrolments and step history; refused while
    contacts run through it (end their runs first: `end_runs`)."""
    active = session.scalar(
        select(func.count())
        .select_from(Enrolment)
        .where(Enrolment.automation_id == automation.id, is_active())
    )
    if active:
        raise Conflict(
            f"{active} contact(s) are still running through this automation; end their runs "
            f"first (POST /api/v1/automations/{automation.id}/end-runs, "
            f"tidings automations end-runs {automation.id})"
        )
    session.execute(delete(StepLog).where(StepLog.automation_id == automation.id))
    session.execute(delete(StepCount).where(StepCount.automation_id == automation.id))
    session.execute(delete(Enrolment).where(Enrolment.automation_id == automation.id))
    session.delete(automation)
    session.flush()


ENDED_BY_HAND = "runs ended by hand"


def end_runs(
    session: Session,
    automation: Automation,
    *,
    now: datetime,
    step: str | None = None,
    contact_ids: list[int] | None = None,
    reason: str | None = None,
) -> dict[str, int]:
    """End the automation's active runs, all of them or only those at `step` and/or of these
    contacts, each as an exit with `reason` (counted like one): one UPDATE however many.
    Returns the runs ended per step. The way to empty a paused automation before deleting it."""
    if step is not None:
        known = set(parse_definition(definition_of(session, automation)).step_ids())
        if step not in known and step not in waiting_by_step(session, automation.id):
            raise ValidationFailed(
                f"step: {step!r} is not a step of this automation",
                errors=[{"field": "step", "message": f"{step!r} is not a step of it"}],
            )
    journal = Journal(now, own_shard())
    ended = enrolments.end_runs(
        session,
        automation.id,
        now=now,
        reason=reason or ENDED_BY_HAND,
        journal=journal,
        step=step,
        contact_ids=contact_ids,
    )
    journal.write(session)
    return dict(sorted(ended.items()))


def enrol_contacts(
    session: Session,
    automation: Automation,
    *,
    now: datetime,
    contact_ids: list[int] | None = None,
    list_name: str | None = None,
    segment: Any = None,
    everyone: bool = False,
) -> int:
    """Enrol by hand or in bulk (one INSERT ... SELECT): ids, a list, a segment, or everyone."""
    chosen = sum(
        x is not None and x is not False
        for x in (contact_ids, list_name, segment, everyone or None)
    )
    if chosen != 1:
        raise ValidationFailed("give exactly one of: contact_ids, list, segment, all")
    where = selection(session, now=now, list_name=list_name, segment=segment)
    return enrol(
        session, loaded(session, automation), now=now, contact_ids=contact_ids, where=where
    )


def selection(
    session: Session, *, now: datetime, list_name: str | None = None, segment: Any = None
) -> ColumnElement[bool] | None:
    """A WHERE clause over contacts for a list's active members or a segment (a condition);
    None for neither (everyone)."""
    if list_name is not None:
        list_id = session.scalar(select(MailingList.id).where(MailingList.name == list_name))
        if list_id is None:
            raise NotFound(f"list {list_name!r} does not exist")
        return Contact.id.in_(
            select(ListMembership.contact_id).where(
                ListMembership.list_id == list_id, ListMembership.status == "active"
            )
        )
    if segment is not None:
        return condition_sql(parse_condition(segment), now)
    return None


# --- reporting -------------------------------------------------------------------------------


def step_counts(session: Session, automation: Automation) -> list[dict[str, Any]]:
    """Per step of the current version: contacts waiting there, passed, failed, refused."""
    definition: Definition = parse_definition(definition_of(session, automation))
    waiting = waiting_by_step(session, automation.id)
    outcomes: dict[tuple[str, str], int] = {
        (step, outcome): int(n)  # PostgreSQL sums as numeric
        for step, outcome, n in session.execute(
            select(StepCount.step, StepCount.outcome, func.sum(StepCount.count))
            .where(StepCount.automation_id == automation.id)
            .group_by(StepCount.step, StepCount.outcome)
        ).all()
    }
    report = []
    for step in definition.steps:
        counts = {o: n for (s, o), n in outcomes.items() if s == step.id}
        report.append(
            {
                "id": step.id,
                "kind": step_kind(step),
                "waiting": waiting.get(step.id, 0),
                "passed": sum(n for o, n in counts.items() if o in ("passed", "timed_out")),
                "failed": counts.get("failed", 0),
                "refused": counts.get("refused", 0),
                "exited": counts.get("exited", 0),
            }
        )
    return report


def summaries(session: Session) -> list[dict[str, Any]]:
    """Every automation with its active run count (the list of the API and the CLI)."""
    active = dict(
        session.execute(
            select(Enrolment.automation_id, func.count())
            .where(is_active())
            .group_by(Enrolment.automation_id)
        ).all()
    )
    return [
        {
            "id": a.id,
            "name": a.name,
            "status": a.status,
            "version": a.current_version,
            "active_enrolments": active.get(a.id, 0),
        }
        for a in session.scalars(select(Automation).order_by(Automation.id))
    ]


def report(session: Session, automation: Automation) -> dict[str, Any]:
    """An automation as `GET /automations/{id}` and `tidings automations show` give it:
    definition, versions, run totals by state and the counts of each step."""
    versions = list(
        session.scalars(
            select(AutomationVersion.version)
            .where(AutomationVersion.automation_id == automation.id)
            .order_by(AutomationVersion.version)
        )
    )
    return {
        "id": automation.id,
        "name": automation.name,
        "status": automation.status,
        "version": automation.current_version,
        "versions": versions,
        "definition": definition_of(session, automation),
        "created_at": automation.created_at,
        "updated_at": automation.updated_at,
        "enrolments": enrolment_totals(session, automation.id),
        "steps": step_counts(session, automation),
    }


def step_kind(step: Any) -> str:
    action = getattr(step, "action", None)
    if action:
        return str(action)
    for kind in ("wait", "if_", "split", "goto", "end"):
        if hasattr(step, kind):
            return kind.rstrip("_")
    return "step"


def waiting_by_step(session: Session, automation_id: int) -> dict[str | None, int]:
    """How many active runs of the automation are at each step (the partial waiting index)."""
    return dict(
        session.execute(
            select(Enrolment.step, func.count())
            .where(Enrolment.automation_id == automation_id, is_active())
            .group_by(Enrolment.step)
        ).all()
    )


def enrolment_totals(session: Session, automation_id: int) -> dict[str, int]:
    return {
        state: n
        for state, n in session.execute(
            select(Enrolment.state, func.count())
            .where(Enrolment.automation_id == automation_id)
            .group_by(Enrolment.state)
        ).all()
    }


ENDED_BY_ROW = ("exited", "failed")  # outcomes no history row holds (see StepLog)


def contact_automations(session: Session, contact_id: int) -> list[dict[str, Any]]:
    """Where a contact is in every automation, with the history of each enrolment."""
    if session.get(Contact, contact_id) is None:
        raise NotFound(f"contact {contact_id} does not exist")
    names = dict(session.execute(select(Automation.id, Automation.name)).all())
    # Every automation id in front: the run-slot index (automation, contact, slot) then finds
    # the contact's runs with one probe per automation.
    rows = session.scalars(
        select(Enrolment)
        .where(Enrolment.automation_id.in_(sorted(names)), Enrolment.contact_id == contact_id)
        .order_by(Enrolment.entered_at, Enrolment.id)  # ids: one block per connection
    ).all()
    ids = [e.id for e in rows]
    history: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for log in session.scalars(
            select(StepLog).where(StepLog.enrolment_id.in_(ids)).order_by(StepLog.at, StepLog.id)
        ):
            history[log.enrolment_id].extend(
                {"step": step, "outcome": outcome, "detail": detail, "at": log.at}
                for step, outcome, detail in log.steps
            )
    for e in rows:  # an exit or failure ends the history; the enrolment row records it
        if e.state in ENDED_BY_ROW and e.ended_at is not None:
            entry = {"step": e.step, "outcome": e.state, "detail": e.end_reason, "at": e.ended_at}
            history[e.id].append(entry)
    return [
        {
            "enrolment_id": e.id,
            "automation_id": e.automation_id,
            "automation": names[e.automation_id],
            "version": e.version,
            "state": e.state,
            "step": e.step if e.state == ACTIVE else None,
            "wake_at": e.wake_at,
            "entered_at": e.entered_at,
            "ended_at": e.ended_at,
            "end_reason": e.end_reason,
            "goals_hit": e.goals_hit,
            "deal_id": e.deal_id,  # the run's deal (deal triggers, add_deal), or null
            "history": history[e.id],
        }
        for e in rows
    ]
