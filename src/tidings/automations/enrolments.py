"""Enrolling contacts (set-wise: one INSERT ... SELECT) and ending enrolments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    case,
    func,
    literal,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from tidings.automations.journal import Journal
from tidings.automations.models import Enrolment
from tidings.automations.registry import Loaded
from tidings.contacts.models import Contact
from tidings.db.bulk import dialect_insert, in_values
from tidings.db.types import JSONType, UTCDateTime

ENROLMENTS: Any = Enrolment.__table__
ACTIVE = "active"
COMPLETED = "completed"
EXITED = "exited"


ONCE, ACTIVE_SLOT = "once", "active"  # run slots: runs once (kept), runs multiple (freed)


def run_slot(loaded: Loaded) -> str:
    """Unique per (contact, automation): forever for runs once, only while active for runs
    multiple (freed to NULL when the run ends; NULLs never clash)."""
    return ACTIVE_SLOT if loaded.definition.runs == "multiple" else ONCE


@dataclass(frozen=True, slots=True)
class Entered:
    """Enrolments made in the current transaction: (id, contact id) of each."""

    loaded: Loaded
    at: datetime
    rows: list[tuple[int, int]]


def enrol(
    session: Session,
    loaded: Loaded,
    *,
    now: datetime,
    contact_ids: Sequence[int] | None = None,
    where: ColumnElement[bool] | None = None,
) -> int:
    """Enrol contacts (by id, or all matching `where`) whose status the automation allows.

    One INSERT ... SELECT; the unique run key silently skips contacts that may not enter
    again, even when two workers enrol the same contact at the same moment. Returns how many
    were enrolled.
    """
    statement = _enrol_statement(session, loaded, now, contact_ids, where)
    if statement is None:
        return 0
    if session.get_bind().dialect.name == "sqlite":
        return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]
    # psycopg reports no row count for INSERT ... SELECT ... ON CONFLICT through SQLAlchemy.
    return len(session.execute(statement.returning(ENROLMENTS.c.id)).all())


def enrol_returning(
    session: Session, loaded: Loaded, *, now: datetime, contact_ids: Sequence[int]
) -> Entered:
    """Like enrol(), and says which enrolments it made, so that the engine can run them in
    this very transaction (nobody else can claim them before it commits)."""
    statement = _enrol_statement(session, loaded, now, contact_ids, None)
    if statement is None:
        return Entered(loaded, now, [])
    returning = statement.returning(ENROLMENTS.c.id, ENROLMENTS.c.contact_id)
    rows = [(r[0], r[1]) for r in session.connection().execute(returning).all()]
    return Entered(loaded, now, rows)


def _enrol_statement(
    session: Session,
    loaded: Loaded,
    now: datetime,
    contact_ids: Sequence[int] | None,
    where: ColumnElement[bool] | None,
) -> Any:
    conditions: list[ColumnElement[bool]] = [
        Contact.status.in_(sorted(loaded.allowed)),
        true(),  # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT
    ]
    if contact_ids is not None:
        if not contact_ids:
            return None
        conditions.append(in_values(session, Contact.id, sorted(set(contact_ids))))
    if where is not None:
        conditions.append(where)
    first = loaded.definition.steps[0].id
    select_ = select(
        literal(loaded.automation_id),
        literal(loaded.version),
        Contact.id,
        literal(ACTIVE),
        literal(first),
        literal(now, UTCDateTime()),
        literal(0),
        literal([], JSONType),
        literal(run_slot(loaded)),
        literal(now, UTCDateTime()),
    ).where(*conditions)
    columns = [
        "automation_id",
        "version",
        "contact_id",
        "state",
        "step",
        "wake_at",
        "hops",
        "goals_hit",
        "run_slot",
        "entered_at",
    ]
    return (
        dialect_insert(session, ENROLMENTS)  # the table: a Core statement, no ORM bookkeeping
        .from_select(columns, select_)
        .on_conflict_do_nothing(index_elements=["contact_id", "automation_id", "run_slot"])
    )


def exit_active(
    session: Session,
    automation_id: int,
    contact_ids: Sequence[int],
    *,
    now: datetime,
    reason: str,
    journal: Journal,
    step_hint: str = "exit",
) -> list[tuple[int, int, str | None]]:
    """End the active enrolments of these contacts in an automation; (id, contact, step) each."""
    if not contact_ids:
        return []
    # An active run holds a run slot: the unique (contact, automation, slot) index finds
    # exactly these rows. `state` is compared through coalesce so that no planner (SQLite has
    # no statistics) scans the automation's active runs by another index instead.
    statement = (
        update(Enrolment)
        .where(
            in_values(session, Enrolment.contact_id, sorted(set(contact_ids))),
            Enrolment.automation_id == automation_id,
            Enrolment.run_slot.is_not(None),
            func.coalesce(Enrolment.state, "") == ACTIVE,
        )
        .values(
            state=EXITED,
            wake_at=None,
            ended_at=now,
            end_reason=reason,
            run_slot=released_slot(),  # runs multiple: the contact may enter again
        )
        .returning(Enrolment.id, Enrolment.contact_id, Enrolment.step)
        .execution_options(synchronize_session=False)  # no Enrolment objects are loaded
    )
    rows = [(r[0], r[1], r[2]) for r in session.connection().execute(statement).all()]
    for eid, cid, step in rows:
        journal.add(eid, automation_id, cid, step or step_hint, EXITED, reason)
    return rows


def released_slot() -> Any:
    """An ended run frees the `active` slot (the contact may enter again); `once` stays."""
    return case((Enrolment.run_slot == ACTIVE_SLOT, None), else_=Enrolment.run_slot)


def is_active() -> ColumnElement[bool]:
    """`state = 'active'` with the value in the SQL text, as the partial indexes say it: with
    a bound parameter, PostgreSQL's generic plans for prepared statements could not use them."""
    return Enrolment.state == literal_column(f"'{ACTIVE}'")
