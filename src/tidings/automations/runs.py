"""A run: one enrolment as the engine holds it while a batch advances it.

The engine reads a batch of enrolments into Runs (tidings.automations.runstore.claim), moves
them through their steps in memory (tidings.automations.interpreter) and writes each back once,
at the end of the transaction (runstore.write_back). A run started in the same transaction (by
a trigger or a start_automation step) is a Run too, with `stored=False`: it is inserted at the
end instead of updated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from tidings.automations.enrolments import ACTIVE, Entered, deal_slot


@dataclass(slots=True)
class Run:
    """One claimed enrolment, advanced in memory and written back at the end of the batch."""

    id: int
    automation_id: int
    version: int
    contact_id: int
    step: str
    wait_until: datetime | None
    hops: int
    goals_hit: list[str]
    entered_at: datetime
    state: str = ACTIVE
    wake_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    moving: bool = True  # still has steps to run in this batch
    contact_status: str | None = None
    stored: bool = True  # False: started in this transaction, inserted at its end
    # The triggered deal (deal actions and conditions act on it), or the one add_deal made.
    deal_id: int | None = None
    # A run started in this transaction by a deal trigger: its (contact, deal) slot.
    run_slot: str | None = None
    deal_set: bool = False  # deal_id set in this batch (by add_deal): written back


def end(run: Run, state: str, now: datetime, reason: str | None) -> None:
    """The run is over (completed, exited, failed): it runs no more steps and wakes no more."""
    run.state, run.moving, run.wake_at = state, False, None
    run.ended_at, run.end_reason = now, reason


def started(entered: Iterable[Entered]) -> list[Run]:
    """Runs for the enrolments started in this transaction, at their automation's first step."""
    return [
        Run(
            enrolment_id,
            e.loaded.automation_id,
            e.loaded.version,
            contact_id,
            e.loaded.definition.steps[0].id,
            None,
            0,
            [],
            e.at,
            stored=False,
            deal_id=e.deals.get(enrolment_id),
            run_slot=(
                deal_slot(e.loaded, e.deals[enrolment_id]) if enrolment_id in e.deals else None
            ),
        )
        for e in entered
        for enrolment_id, contact_id in e.rows
    ]
