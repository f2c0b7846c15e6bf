"""What runs went through in one transaction: the history rows and the per-step totals.

A batch's runs mostly pass several steps at once (tag, tag, wait): their history is written as
ONE StepLog row per enrolment, and the report's counts as a handful of additions to StepCount,
instead of one row per step execution.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from tidings.automations.models import StepCount, StepLog
from tidings.db.bulk import dialect_insert, insert_tuples

SHARDS = 16
LOG_COLUMNS = ("enrolment_id", "automation_id", "contact_id", "at", "steps")
STEP_COUNTS: Any = StepCount.__table__


class RunLike(Protocol):
    id: int
    contact_id: int


def own_shard() -> int:
    """A worker's StepCount shard (a clash only makes two workers share a row's lock)."""
    return random.randrange(SHARDS)


class Journal:
    """Collects, per enrolment, the steps a transaction ran it through; `write` stores them
    (at `now`) with the transaction, as history rows and additions to the shard's counts."""

    def __init__(self, now: datetime, shard: int = 0) -> None:
        self.now, self.shard = now, shard
        # enrolment id -> (automation id, contact id, [[step, outcome, detail], ...])
        self.trails: dict[int, tuple[int, int, list[tuple[str, str, str | None]]]] = {}
        self.tallies: Counter[tuple[int, str, str]] = Counter()  # counted, no history entry

    def add(
        self,
        enrolment_id: int,
        automation_id: int,
        contact_id: int,
        step: str,
        outcome: str,
        detail: str | None = None,
    ) -> None:
        trail = self.trails.get(enrolment_id)
        if trail is None:
            self.trails[enrolment_id] = (automation_id, contact_id, [(step, outcome, detail)])
        else:
            trail[2].append((step, outcome, detail))

    def count(self, automation_id: int, step: str, outcome: str, runs: int = 1) -> None:
        """Count an outcome without a history entry: a run's end, which its enrolment row
        records (state, step, ended_at, end_reason)."""
        self.tallies[(automation_id, step, outcome)] += runs

    def add_all(
        self,
        runs: Iterable[RunLike],
        automation_id: int,
        step: str,
        outcome: str,
        detail: str | None = None,
    ) -> None:
        """The same entry for each of these runs (a step group's usual case)."""
        entry = (step, outcome, detail)
        trails = self.trails
        for run in runs:
            trail = trails.get(run.id)
            if trail is None:
                trails[run.id] = (automation_id, run.contact_id, [entry])
            else:
                trail[2].append(entry)

    def write(self, session: Session) -> None:
        """Insert the history rows and add the counts (in key order: two PostgreSQL workers
        on one shard then lock its rows in the same order, never in a cycle)."""
        now = self.now
        rows = [
            (enrolment_id, automation_id, contact_id, now, steps)
            for enrolment_id, (automation_id, contact_id, steps) in self.trails.items()
        ]
        insert_tuples(session, StepLog.__table__, LOG_COLUMNS, rows)  # type: ignore[arg-type]
        counts = Counter(
            (automation_id, step, outcome)
            for automation_id, _, steps in self.trails.values()
            for step, outcome, _ in steps
        )
        counts.update(self.tallies)
        if counts:
            insert = dialect_insert(session, STEP_COUNTS)
            session.execute(
                insert.on_conflict_do_update(
                    index_elements=["automation_id", "step", "outcome", "shard"],
                    set_={"count": STEP_COUNTS.c.count + insert.excluded.count},
                ),
                [
                    {
                        "automation_id": automation_id,
                        "step": step,
                        "outcome": outcome,
                        "shard": self.shard,
                        "count": n,
                    }
                    for (automation_id, step, outcome), n in sorted(counts.items())
                ],
            )
        self.trails.clear()
        self.tallies.clear()
