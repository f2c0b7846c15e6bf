"""Automations: create, edit (a new version each time), pause, enrol, and report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from tidings.automations import definition as d
from tidings.automations.definition import Definition, parse_definition
from tidings.automations.enrolments import ACTIVE, enrol, is_active
from tidings.automations.matcher import ensure_cursor
from tidings.automations.models import (
    Automation,
    AutomationVersion,
    Enrolment,
    StepCount,
    StepLog,
)
from tidings.automations.registry import Loaded
from tidings.contacts.models import Contact, CustomField, ListMembership, MailingList, Tag
from tidings.contacts.service import PROFILE_ATTRIBUTES, ensure_lists, ensure_tags
from tidings.errors import Conflict, NotFound, ValidationFailed
from tidings.messaging.models import EmailTemplate
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
    """Delete an automation, its versions, enrolments and step history."""
    session.execute(delete(StepLog).where(StepLog.automation_id == automation.id))
    session.execute(delete(StepCount).where(StepCount.automation_id == automation.id))
    session.execute(delete(Enrolment).where(Enrolment.automation_id == automation.id))
    session.delete(automation)
    session.flush()


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
    where: ColumnElement[bool] | None = None
    if list_name is not None:
        list_id = session.scalar(select(MailingList.id).where(MailingList.name == list_name))
        if list_id is None:
            raise NotFound(f"list {list_name!r} does not exist")
        where = Contact.id.in_(
            select(ListMembership.contact_id).where(
                ListMembership.list_id == list_id, ListMembership.status == "active"
            )
        )
    elif segment is not None:
        where = condition_sql(parse_condition(segment), now)
    return enrol(
        session, loaded(session, automation), now=now, contact_ids=contact_ids, where=where
    )


# --- reporting -------------------------------------------------------------------------------


def step_counts(session: Session, automation: Automation) -> list[dict[str, Any]]:
    """Per step of the current version: contacts waiting there, passed, failed, refused."""
    definition: Definition = parse_definition(definition_of(session, automation))
    waiting = waiting_by_step(session, automation.id)
    outcomes: dict[tuple[str, str], int] = {
        (step, outcome): n
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
            "history": history[e.id],
        }
        for e in rows
    ]


# --- references --------------------------------------------------------------------------------


def reference_problems(session: Session, definition: Definition) -> list[dict[str, str]]:
    """Tags, lists, fields, templates and automations named by the definition that do not
    exist, each with its path. Missing tags and lists can be created (`create_missing`)."""
    tags = set(session.scalars(select(Tag.name)))
    lists = set(session.scalars(select(MailingList.name)))
    fields = set(session.scalars(select(CustomField.key)))
    templates = set(session.scalars(select(EmailTemplate.name)))
    automations = set(session.scalars(select(Automation.name))) | {definition.name}
    problems: list[dict[str, str]] = []

    def missing(path: str, what: str, name: str, offer: str | None) -> None:
        problem = {"field": path, "message": f"{what} {name!r} does not exist"}
        if offer:
            problem["offer"] = offer
        problems.append(problem)

    trigger_tag = getattr(definition.trigger, "tag", None)
    if isinstance(trigger_tag, str) and trigger_tag not in tags:
        missing("trigger.tag", "tag", trigger_tag, "create")
    trigger_list = getattr(definition.trigger, "list", None)
    if isinstance(trigger_list, str) and trigger_list not in lists:
        missing("trigger.list", "list", trigger_list, "create")
    for index, step in enumerate(definition.steps):
        path = f"steps[{index}]"
        if isinstance(step, d.TagAction):
            for name in step.tags:
                if name not in tags:
                    missing(f"{path}.tag", "tag", name, "create")
        elif isinstance(step, d.ListAction) and step.list not in lists:
            missing(f"{path}.list", "list", step.list, "create")
        elif (
            isinstance(step, d.SetFieldAction)
            and step.field not in PROFILE_ATTRIBUTES
            and step.field not in fields
        ):
            missing(f"{path}.field", "custom field", step.field, None)
        elif isinstance(step, d.SendEmailAction) and step.template not in templates:
            missing(f"{path}.template", "template", step.template, None)
        elif (
            isinstance(step, d.StartAutomationAction | d.ExitAutomationAction)
            and step.automation not in automations
        ):
            missing(f"{path}.automation", "automation", step.automation, None)
    return problems


def create_missing(session: Session, problems: list[dict[str, str]], *, now: datetime) -> None:
    """Create the tags and lists that `reference_problems` offered to create."""
    names = {"tag": [], "list": []}  # type: dict[str, list[str]]
    for problem in problems:
        if problem.get("offer") == "create":
            kind = problem["field"].rsplit(".", 1)[-1]
            names[kind].append(problem["message"].split("'")[1])
    ensure_tags(session, names["tag"], now)
    ensure_lists(session, names["list"], now)
