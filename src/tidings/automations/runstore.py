"""The run store: how the engine reads runs out of the enrolments table and writes them back.

- `claim`: the due enrolments of a batch, locked for this transaction (PostgreSQL: FOR UPDATE
  SKIP LOCKED, so workers take disjoint batches; SQLite: the transaction already holds the
  write lock), read into Runs with their contact's status.
- `write_back`: every run of the batch once, at its end: one UPDATE per shape of new values
  (runs that moved together share them), and one INSERT of the runs started in this
  transaction, in the state they reached (enrolments.store_started).
- `fail`: a run that raised even on its own ends as failed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Dialect, String, Text, cast, select, type_coerce, update
from sqlalchemy.orm import Session

from tidings.automations import definition as d
from tidings.automations.actions import FAILED
from tidings.automations.enrolments import (
    ACTIVE,
    frees_slot,
    is_active,
    released_slot,
    run_slot,
    store_started,
)
from tidings.automations.models import Enrolment
from tidings.automations.registry import Registry
from tidings.automations.runs import Run
from tidings.contacts.models import Contact
from tidings.db.bulk import in_values
from tidings.db.dialect import dialect_of
from tidings.db.types import UTCDateTime


def claim(
    session: Session,
    automation_ids: list[int],
    now: datetime,
    *,
    limit: int,
    only: int | None = None,
) -> list[Run]:
    """Up to `limit` due runs of these automations, oldest wake time first (`only`: that one
    enrolment, if it is due), locked until the transaction ends."""
    statement = (
        select(
            Enrolment.id,
            Enrolment.automation_id,
            Enrolment.version,
            Enrolment.contact_id,
            Enrolment.step,
            type_coerce(Enrolment.wait_until, String()),  # as stored: see _Timestamps
            Enrolment.hops,
            # As text: nearly always "[]", which needs no JSON decoding.
            cast(Enrolment.goals_hit, Text),
            type_coerce(Enrolment.entered_at, String()),
            Contact.status,
            Enrolment.deal_id,
        )
        .outerjoin(Contact, Contact.id == Enrolment.contact_id)
        .where(
            is_active(),
            Enrolment.wake_at <= now,
            # "+ 0": through the due index in wake_at order, never by automation (SQLite,
            # without statistics, would take every active run of the automation and sort).
            (Enrolment.automation_id + 0).in_(automation_ids),
        )
        .order_by(Enrolment.wake_at, Enrolment.id)
        .limit(limit)
    )
    if only is not None:
        statement = statement.where(Enrolment.id == only)
    connection = session.connection()
    dialect = dialect_of(connection)
    statement = dialect.claim(statement, of=Enrolment)
    # A Core execution: the ORM's per-row result processing costs more than the rest.
    stamps = _Timestamps(connection.dialect)
    # Walk the due index in wake_at order and stop after the batch. A bitmap scan (the
    # planner's pick when statistics are missing or stale) reads every due entry on every
    # claim, dead ones included; an index scan also marks the dead entries it passes, so the
    # next claim skips them even before vacuum has run.
    with dialect.index_scans_only(connection):
        rows = connection.execute(statement).all()
    return [
        Run(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4] or d.END,
            None if r[5] is None else stamps[r[5]],
            r[6],
            _goals(r[7]),
            stamps[r[8]],
            contact_status=r[9],
            deal_id=r[10],
        )
        for r in rows
    ]


def write_back(session: Session, registry: Registry, runs: Sequence[Run], now: datetime) -> None:
    """Runs that moved together share their new values: one UPDATE per shape of values.
    Runs started in this transaction are inserted, as they are now."""
    shapes: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    new: list[tuple[Any, ...]] = []
    for run in runs:
        if run.moving:  # not reachable: the interpreter settles every run
            run.moving, run.wake_at = False, now
        if not run.stored:
            new.append(_new_row(session, registry, run))
            continue
        shape = (
            run.state,
            run.step,
            run.wake_at,
            run.wait_until,
            run.hops,
            tuple(run.goals_hit),
            run.ended_at,
            run.end_reason,
            run.deal_id if run.deal_set else None,  # None: the deal stays as stored
        )
        shapes[shape].append(run.id)
    for shape, ids in shapes.items():
        state, step, wake_at, wait_until, hops, goals, ended_at, end_reason, deal_id = shape
        values: dict[str, Any] = {
            "state": state,
            "step": step,
            "wake_at": wake_at,
            "wait_until": wait_until,
            "hops": hops,
            "goals_hit": list(goals),
            "ended_at": ended_at,
            "end_reason": end_reason,
        }
        if deal_id is not None:
            values["deal_id"] = deal_id
        if state != ACTIVE:
            values["run_slot"] = released_slot()
        session.execute(
            update(Enrolment)
            .where(in_values(session, Enrolment.id, ids))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    store_started(session, new)


def fail(session: Session, enrolment_id: int, now: datetime, reason: str) -> None:
    """End one run as failed (it raised even when run on its own)."""
    session.execute(
        update(Enrolment)
        .where(Enrolment.id == enrolment_id)
        .values(
            state=FAILED,
            wake_at=None,
            ended_at=now,
            end_reason=reason[:2000],
            run_slot=released_slot(),
        )
    )


def _new_row(session: Session, registry: Registry, run: Run) -> tuple[Any, ...]:
    """A run started in this transaction as stored (enrolments.STARTED_COLUMNS)."""
    slot = run.run_slot or run_slot(registry.version(session, run.automation_id, run.version))
    return (
        run.id,
        run.automation_id,
        run.version,
        run.contact_id,
        run.state,
        run.step,
        run.wake_at,
        run.hops,
        run.goals_hit,
        None if run.state != ACTIVE and frees_slot(slot) else slot,
        run.entered_at,
        run.wait_until,
        run.ended_at,
        run.end_reason,
        run.deal_id,
    )


class _Timestamps(dict[Any, datetime]):
    """Stored timestamps converted once each: a batch's runs mostly share a few (they entered
    or started waiting together)."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__()
        self.dialect = dialect

    def __missing__(self, stored: Any) -> datetime:
        value = UTCDateTime().process_result_value(stored, self.dialect)
        assert value is not None
        self[stored] = value
        return value


def _goals(stored: str | None) -> list[str]:
    if not stored or stored == "[]":
        return []
    return list(orjson.loads(stored))
