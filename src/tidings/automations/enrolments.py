"""Enrolling contacts (set-wise: one INSERT ... SELECT) and ending enrolments."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    and_,
    case,
    func,
    literal,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidings.automations.journal import Journal
from tidings.automations.models import Enrolment
from tidings.automations.registry import Loaded
from tidings.contacts.models import Contact
from tidings.db.bulk import (
    dialect_insert,
    in_values,
    insert_tuples,
    reserve_ids,
    rows_select,
    values_select,
)
from tidings.db.dialect import dialect_of
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


def deal_slot(loaded: Loaded, deal_id: int) -> str:
    """The slot of a run a deal trigger starts: per (contact, deal), `o:<deal>` kept (runs
    once), `a:<deal>` freed when the run ends (runs multiple)."""
    return f"{'a' if loaded.definition.runs == 'multiple' else 'o'}:{deal_id}"


def frees_slot(slot: str | None) -> bool:
    """Whether a run in this slot frees it when it ends (runs multiple)."""
    return slot == ACTIVE_SLOT or (slot is not None and slot.startswith("a:"))


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
    return _inserted(session, statement)


def _inserted(session: Session, statement: Any) -> int:
    """Run an INSERT ... SELECT of enrolments; how many rows it inserted."""
    return dialect_of(session).inserted_count(session, statement, ENROLMENTS.c.id)


@dataclass(frozen=True, slots=True)
class Entered:
    """Runs started in the current transaction and not stored yet: (reserved id, contact id)
    each. The engine runs them at once and inserts each row ONCE, in the state the run ends
    the transaction in (`store_started`): an INSERT now and an UPDATE at the end of the batch
    would write every new row, and each of its index entries, twice."""

    loaded: Loaded
    at: datetime
    rows: list[tuple[int, int]]
    deals: dict[int, int] = field(default_factory=dict)  # enrolment id -> its triggered deal


def start_runs(
    session: Session,
    loaded: Loaded,
    *,
    now: datetime,
    contact_ids: Sequence[int],
    held: dict[tuple[int, ...], int],
    freed: Collection[int] = (),
) -> Entered:
    """The contacts of these that may enter now, each with a reserved enrolment id: status
    allowed, run slot free in the database and not held by a run this transaction started
    before (`held`: (automation, contact) -> enrolment id, updated here). `freed`: contacts
    whose active run this transaction has just ended (a restart); in a runs-multiple
    automation their slot is free, so only their status is looked up.

    A concurrent transaction may still take a slot before this one stores its run: its
    INSERT in `store_started` then fails (SlotTaken) and the engine redoes the batch.
    """
    if not contact_ids:
        return Entered(loaded, now, [])
    automation_id, slot = loaded.automation_id, run_slot(loaded)
    wanted = set(contact_ids)
    known_free = wanted & set(freed) if slot == ACTIVE_SLOT else set()
    allowed = _allowed(session, loaded, known_free, None)
    allowed += _allowed(session, loaded, wanted - known_free, slot)
    free = sorted(c for c in allowed if (automation_id, c) not in held)
    ids = reserve_ids(session, ENROLMENTS, len(free))
    for enrolment_id, contact_id in zip(ids, free, strict=True):
        held[(automation_id, contact_id)] = enrolment_id
    return Entered(loaded, now, list(zip(ids, free, strict=True)))


def start_deal_runs(
    session: Session,
    loaded: Loaded,
    *,
    now: datetime,
    pairs: Collection[tuple[int, int]],
    held: dict[tuple[int, ...], int],
) -> Entered:
    """start_runs for a deal trigger: (contact, deal) pairs, each with a reserved id if its
    contact's status is allowed and its (contact, deal) slot is free (`held` is keyed by
    (automation, contact, deal) for these)."""
    if not pairs:
        return Entered(loaded, now, [])
    automation_id = loaded.automation_id
    source = _slots_select(session, loaded, sorted(set(pairs))).subquery("runs")
    holder = (
        select(ENROLMENTS.c.id)
        .where(
            ENROLMENTS.c.automation_id == automation_id,
            ENROLMENTS.c.contact_id == source.c.contact_id,
            ENROLMENTS.c.run_slot == source.c.slot,
        )
        .offset(0)
    )
    query = (
        select(source.c.contact_id, source.c.deal_id)
        .join(Contact, Contact.id == source.c.contact_id)
        .where(Contact.status.in_(sorted(loaded.allowed)), ~holder.exists())
    )
    allowed = sorted((int(c), int(d)) for c, d in session.execute(query).all())
    free = [(c, d) for c, d in allowed if (automation_id, c, d) not in held]
    ids = reserve_ids(session, ENROLMENTS, len(free))
    for enrolment_id, (contact_id, deal_id) in zip(ids, free, strict=True):
        held[(automation_id, contact_id, deal_id)] = enrolment_id
    return Entered(
        loaded,
        now,
        [(i, c) for i, (c, _) in zip(ids, free, strict=True)],
        {i: d for i, (_, d) in zip(ids, free, strict=True)},
    )


def enrol_deal_runs(
    session: Session, loaded: Loaded, *, now: datetime, pairs: Sequence[tuple[int, int]]
) -> int:
    """Enrol (contact, deal) pairs at the first step, stored at once (ONE INSERT ... SELECT;
    a taken slot or a status not allowed skips the pair). Returns how many were enrolled."""
    if not pairs:
        return 0
    source = _slots_select(session, loaded, sorted(set(pairs))).subquery("runs")
    at: Any = literal(now, UTCDateTime())
    select_ = (
        select(
            literal(loaded.automation_id),
            literal(loaded.version),
            source.c.contact_id,
            literal(ACTIVE),
            literal(loaded.definition.steps[0].id),
            at,
            literal(0),
            literal([], JSONType),
            source.c.slot,
            at,
            source.c.deal_id,
        )
        .join(Contact, Contact.id == source.c.contact_id)
        .where(Contact.status.in_(sorted(loaded.allowed)), true())
    )
    statement = (
        dialect_insert(session, ENROLMENTS)
        .from_select([*ENTERED_COLUMNS, "deal_id"], select_)
        .on_conflict_do_nothing(index_elements=["automation_id", "contact_id", "run_slot"])
    )
    return _inserted(session, statement)


def _slots_select(session: Session, loaded: Loaded, pairs: Sequence[tuple[int, int]]) -> Any:
    """SELECT contact_id, deal_id, slot over (contact, deal) pairs (one bound parameter each)."""
    return rows_select(
        session,
        [("contact_id", BigInteger()), ("deal_id", BigInteger()), ("slot", String())],
        [(c, d, deal_slot(loaded, d)) for c, d in pairs],
    )


def _allowed(
    session: Session, loaded: Loaded, contact_ids: set[int], slot: str | None
) -> list[int]:
    """Those of these contacts whose status the automation allows and, unless `slot` is None,
    who have no run in that slot: one probe of the run-slot index per contact (OFFSET 0 keeps
    the NOT EXISTS a subquery per contact; PostgreSQL, without statistics, turned it into an
    anti-join that read all of the automation's runs)."""
    if not contact_ids:
        return []
    query = select(Contact.id).where(
        in_values(session, Contact.id, sorted(contact_ids)),
        Contact.status.in_(sorted(loaded.allowed)),
    )
    if slot is not None:
        holder = (
            select(ENROLMENTS.c.id)
            .where(
                ENROLMENTS.c.automation_id == loaded.automation_id,
                ENROLMENTS.c.contact_id == Contact.id,
                ENROLMENTS.c.run_slot == slot,
            )
            .offset(0)
        )
        query = query.where(~holder.exists())
    return list(session.scalars(query))


def runs_of(
    session: Session,
    automation_id: int,
    contact_ids: Sequence[int],
    column: Any,
    *conditions: ColumnElement[bool],
) -> Any:
    """SELECT `column` of these contacts' runs of the automation that meet `conditions`:
    one probe of the run-slot index (automation, contact, slot) per contact.

    PostgreSQL gets the probes as a LATERAL subquery per contact (OFFSET 0 keeps it one): as a
    join or `contact_id = ANY(array)`, its planner, without statistics, searched the index
    by the automation alone and matched every run of it against the contacts. SQLite probes
    for `contact_id IN (values)` (as a join it would read the automation's runs instead).
    """
    if not dialect_of(session).probes_laterally:
        statement = select(column).where(
            Enrolment.automation_id == automation_id,
            in_values(session, Enrolment.contact_id, contact_ids),
            *conditions,
        )
    else:
        contacts = values_select(session, contact_ids, BigInteger()).subquery()
        probe = (
            select(column)
            .where(
                Enrolment.automation_id == automation_id,
                Enrolment.contact_id == contacts.c.value,
                *conditions,
            )
            .offset(0)
            .lateral()
        )
        statement = select(*probe.c).select_from(contacts.join(probe, true()))
    # Never correlated: inside UPDATE enrolments ... WHERE id IN (this) it reads its own rows.
    return statement.correlate(None)


class SlotTaken(Exception):
    """A run started in this transaction lost its run slot to a concurrent transaction."""


def store_started(session: Session, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert runs started in this transaction (STARTED_COLUMNS: reserved ids, final state).

    A run that another transaction's run beat to its slot violates the unique run-slot index:
    SlotTaken, and the whole batch (its effects included) rolls back.
    """
    if not rows:
        return
    try:
        insert_tuples(session, ENROLMENTS, STARTED_COLUMNS, rows)
    except (IntegrityError, sqlite3.IntegrityError, psycopg.errors.UniqueViolation) as exc:
        # The drivers' own errors too: insert_tuples talks to them directly (COPY, executemany).
        if SLOT_INDEX in str(exc) or "enrolments.run_slot" in str(exc):
            raise SlotTaken(str(exc)) from exc
        raise


# A run as it enters (bulk enrolment), and as a run started in a transaction is stored.
ENTERED_COLUMNS = (
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
)
STARTED_COLUMNS = ("id", *ENTERED_COLUMNS, "wait_until", "ended_at", "end_reason", "deal_id")
SLOT_INDEX = "uq_enrolments_automation_id_contact_id_run_slot"


def _enrol_statement(
    session: Session,
    loaded: Loaded,
    now: datetime,
    contact_ids: Sequence[int] | None,
    where: ColumnElement[bool] | None,
    placed: Placed | None = None,
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
    at: Any = literal(now, UTCDateTime())
    if placed is None:
        placed = Placed(loaded.definition.steps[0].id, at, at)
    ended = placed.state != ACTIVE
    slot = run_slot(loaded)
    select_ = select(
        literal(loaded.automation_id),
        literal(loaded.version),
        Contact.id,
        literal(placed.state),
        literal(placed.step),
        placed.wake_at if placed.wake_at is not None else literal(None, UTCDateTime()),
        literal(0),
        literal([], JSONType),
        literal(None if ended and slot == ACTIVE_SLOT else slot, String()),
        placed.entered_at,
        at if ended else literal(None, UTCDateTime()),
    ).where(*conditions)
    columns = [*ENTERED_COLUMNS, "ended_at"]
    return (
        dialect_insert(session, ENROLMENTS)  # the table: a Core statement, no ORM bookkeeping
        .from_select(columns, select_)
        .on_conflict_do_nothing(index_elements=["automation_id", "contact_id", "run_slot"])
    )


@dataclass(frozen=True, slots=True)
class Placed:
    """Where runs enrolled by `place` stand: a step, in a state (active, or completed: it
    ended there), with SQL for each contact's entry and wake times (columns of contacts)."""

    step: str
    entered_at: ColumnElement[Any]
    wake_at: ColumnElement[Any] | None
    state: str = ACTIVE


def place(
    session: Session,
    loaded: Loaded,
    placed: Placed,
    *,
    now: datetime,
    where: ColumnElement[bool],
) -> int:
    """Enrol the contacts matching `where` (and the automation's statuses) directly at a step,
    as if they had run there from their own entry time: ONE INSERT ... SELECT. Their history
    starts at that step (the steps before it are not run). Returns how many were enrolled."""
    statement = _enrol_statement(session, loaded, now, None, where, placed)
    return _inserted(session, statement)


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
    # An active run holds a run slot. `state` is compared through coalesce so that no
    # planner (SQLite has no statistics) searches the automation's active runs by another index.
    active = runs_of(
        session,
        automation_id,
        sorted(set(contact_ids)),
        Enrolment.id,
        Enrolment.run_slot.is_not(None),
        func.coalesce(Enrolment.state, "") == ACTIVE,
    )
    statement = _exit(Enrolment.id.in_(active), now, reason).returning(
        Enrolment.id, Enrolment.contact_id, Enrolment.step
    )
    rows = [(r[0], r[1], r[2]) for r in session.connection().execute(statement).all()]
    for _, _, step in rows:
        journal.count(automation_id, step or step_hint, EXITED)
    return rows


def end_runs(
    session: Session,
    automation_id: int,
    *,
    now: datetime,
    reason: str,
    journal: Journal,
    step: str | None = None,
    contact_ids: Sequence[int] | None = None,
) -> Counter[str]:
    """End an automation's active runs (only those at `step`, only those of these contacts)
    as exits with `reason`, in ONE UPDATE, and count them like exits; returns the runs ended
    per step. A run a worker holds in its batch is waited for (its row is locked), and is
    ended only if it is still active, and still at `step`, once that batch has committed."""
    conditions = [Enrolment.automation_id == automation_id, is_active()]
    if step is not None:
        conditions.append(Enrolment.step == step)
    if contact_ids is not None:
        conditions.append(in_values(session, Enrolment.contact_id, sorted(set(contact_ids))))
    statement = _exit(and_(*conditions), now, reason).returning(Enrolment.step)
    ended = Counter(s or "exit" for s in session.connection().execute(statement).scalars())
    for at, runs in ended.items():
        journal.count(automation_id, at, EXITED, runs)
    return ended


def _exit(where: ColumnElement[bool], now: datetime, reason: str) -> Any:
    """UPDATE: the active runs `where` selects end as exits with `reason`."""
    return (
        update(Enrolment)
        .where(where)
        .values(
            state=EXITED,
            wake_at=None,
            ended_at=now,
            end_reason=reason,
            run_slot=released_slot(),  # runs multiple: the contact may enter again
        )
        .execution_options(synchronize_session=False)  # no Enrolment objects are loaded
    )


def released_slot() -> Any:
    """An ended run frees the `active` slot (the contact may enter again), and a deal run its
    `a:<deal>` slot; `once` and `o:<deal>` stay."""
    return case(
        (Enrolment.run_slot == ACTIVE_SLOT, None),
        (Enrolment.run_slot.like("a:%"), None),
        else_=Enrolment.run_slot,
    )


def is_active() -> ColumnElement[bool]:
    """`state = 'active'` with the value in the SQL text, as the partial indexes say it: with
    a bound parameter, PostgreSQL's generic plans for prepared statements could not use them."""
    return Enrolment.state == literal_column(f"'{ACTIVE}'")
