"""Runs started inside a transaction are stored once, at its end: restarting such a run in the
same transaction, and losing its run slot to another transaction, keep every rule."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from tests.automations.helpers import activities, automation, make_contacts
from tidings.automations import runstore
from tidings.automations.engine import Engine
from tidings.automations.enrolments import STARTED_COLUMNS
from tidings.automations.models import Automation, Enrolment
from tidings.automations.service import contact_automations, enrol_contacts, get_automation
from tidings.clock import FakeClock
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact
from tidings.db.engine import Database

LONG = """
name: Long
runs: multiple
steps:
  - {id: a, action: adjust_score, by: 1}
  - {id: w, wait: {days: 10}}
"""


def _runs(database: Database, automation_id: int) -> Counter[str]:
    with database.session() as session:
        states = select(Enrolment.state).where(Enrolment.automation_id == automation_id)
        return Counter(session.scalars(states))


def _starter(database: Database, clock: FakeClock, trigger: str = "") -> Automation:
    return automation(
        database,
        clock,
        f"""
name: Starter
{trigger}
runs: multiple
steps:
  - {{id: first, action: start_automation, automation: Long, restart: true}}
  - {{id: second, action: start_automation, automation: Long, restart: true}}
""",
    )


def test_a_run_restarted_in_the_transaction_that_started_it(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    long = automation(database, clock, LONG)
    starter = _starter(database, clock)
    (cid,) = make_contacts(database, clock, 1)
    with database.session() as session:
        enrol_contacts(
            session, get_automation(session, starter.id), now=clock.now(), contact_ids=[cid]
        )
    engine.run_until_idle()
    # The first run was exited before it ran a step; the second one runs and waits.
    assert _runs(database, long.id) == Counter({"exited": 1, "active": 1})
    assert len(activities(database, cid, "score_changed")) == 1
    with database.session() as session:
        runs = contact_automations(session, cid)
    exited = next(run for run in runs if run["state"] == "exited")
    assert exited["end_reason"] == "restarted by Starter"
    assert [(h["step"], h["outcome"], h["detail"]) for h in exited["history"]] == [
        ("a", "exited", "restarted by Starter")
    ]


class _Rival:
    """Before the first store of a Long run, another run of Long takes the contact's slot:
    on PostgreSQL committed by another connection (the retried batch then sees it), on SQLite
    in the same transaction (there a rival cannot write while the batch holds the lock)."""

    def __init__(self, database: Database, long: Automation, contact_id: int) -> None:
        self.database, self.long, self.contact_id = database, long, contact_id
        self.fired = 0

    def __call__(self, session: Any, rows: Any) -> None:
        if not self.fired and any(row[1] == self.long.id for row in rows):
            self.fired += 1
            rival = {
                "automation_id": self.long.id,
                "version": 1,
                "contact_id": self.contact_id,
                "state": "active",
                "step": "w",
                "wake_at": rows[0][ENDED_AT] or rows[0][ENTERED_AT],
                "hops": 1,
                "goals_hit": [],
                "run_slot": "active",
                "entered_at": rows[0][ENTERED_AT],
            }
            if self.database.is_sqlite:
                session.execute(Enrolment.__table__.insert(), [rival])
            else:
                with self.database.engine.begin() as other:
                    other.execute(Enrolment.__table__.insert(), [rival])
        STORE(session, rows)


STORE = runstore.store_started
ENTERED_AT = STARTED_COLUMNS.index("entered_at")
ENDED_AT = STARTED_COLUMNS.index("ended_at")


@pytest.mark.parametrize("trigger", ["", "trigger: {type: tag_added, tag: Go}"])
def test_a_new_run_that_loses_its_slot_rolls_its_batch_back(
    database: Database,
    clock: FakeClock,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    trigger: str,
) -> None:
    """Claimed batch: redone. Trigger pass: the triggered runs are stored as entered and run
    in a batch of their own. Either way each contact has one active run, and effects once."""
    long = automation(database, clock, LONG)
    starter = _starter(database, clock, trigger)
    (cid,) = make_contacts(database, clock, 1)
    rival = _Rival(database, long, cid)
    monkeypatch.setattr(runstore, "store_started", rival)
    with database.session() as session:
        if trigger:
            contact = session.get(Contact, cid)
            assert contact is not None
            contacts.add_tag(session, contact, "Go", now=clock.now(), cause="api")
        else:
            enrol_contacts(
                session, get_automation(session, starter.id), now=clock.now(), contact_ids=[cid]
            )
    engine.run_until_idle()
    assert rival.fired == 1
    runs = _runs(database, long.id)
    assert runs["active"] == 1
    scores = len(activities(database, cid, "score_changed"))
    if database.is_sqlite:  # the rival rolled back with the batch; the redo started Long
        assert runs == Counter({"exited": 1, "active": 1}) and scores == 1
    else:  # the rival won: the redo exited it (restart) and started Long anew, twice
        assert runs == Counter({"exited": 2, "active": 1}) and scores == 1
    assert _runs(database, starter.id) == Counter({"completed": 1})
