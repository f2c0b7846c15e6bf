"""Goals and condition waits over events: by default only events after the run entered
count (`since: entry`); `since: any` keeps the old meaning, where history counts too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml

from tests.automations.helpers import automation, enrolments, make_contacts, step_entries
from tidings.automations.definition import parse_definition
from tidings.automations.engine import Engine
from tidings.automations.service import enrol_contacts, get_automation
from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.events.service import ingest_events

GOAL = """
name: Buy
steps:
  - {{id: w, wait: {{days: 10}}}}
  - {{id: after, action: add_tag, tag: Waited}}
goals:
  - {{id: bought, when: {when}, jump_to: end{since}}}
"""


def _events(database: Database, clock: FakeClock, events: list[dict[str, Any]]) -> None:
    with database.session() as session:
        report = ingest_events(session, events, now=clock.now(), cause="api")
        assert not report.rejected


def _enrol(database: Database, clock: FakeClock, automation_id: int, ids: list[int]) -> None:
    with database.session() as session:
        enrol_contacts(
            session, get_automation(session, automation_id), now=clock.now(), contact_ids=ids
        )


def _purchases(
    database: Database, clock: FakeClock, contact_ids: list[int], amount: float = 5
) -> None:
    _events(
        database,
        clock,
        [{"type": "purchase", "contact_id": c, "amount": amount} for c in contact_ids],
    )


def _goal_hits(database: Database) -> set[int]:
    return {contact for contact, outcome, _ in step_entries(database, "w") if outcome == "goal"}


def test_a_goal_ignores_events_from_before_the_contact_entered(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    ids = make_contacts(database, clock, 6)
    _purchases(database, clock, ids[:3])
    clock.advance(days=3)
    entry = automation(database, clock, GOAL.format(when="{event: {type: purchase}}", since=""))
    _enrol(database, clock, entry.id, ids)
    engine.run_until_idle()
    assert _goal_hits(database) == set()  # the purchases before entering do not count
    assert {e.state for e in enrolments(database, entry.id)} == {"active"}
    clock.advance(hours=1)
    _purchases(database, clock, [ids[0], ids[4]])
    engine.run_until_idle()
    assert _goal_hits(database) == {ids[0], ids[4]}
    states = {e.contact_id: e.state for e in enrolments(database, entry.id)}
    assert [states[c] for c in ids] == [
        "completed",
        "active",
        "active",
        "active",
        "completed",
        "active",
    ]


def test_since_any_keeps_the_old_meaning(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    ids = make_contacts(database, clock, 4)
    _purchases(database, clock, ids[:2])
    clock.advance(days=3)
    text = GOAL.format(when="{event: {type: purchase}}", since=", since: any")
    assert parse_definition(yaml.safe_load(text)).goals[0].since == "any"
    old = automation(database, clock, text)
    _enrol(database, clock, old.id, ids)
    engine.run_until_idle()
    assert _goal_hits(database) == set(ids[:2])  # completed on enrolment, as before


def test_each_run_is_bounded_by_its_own_entry_in_one_query(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    """Two runs that entered at different times, checked together: the same purchase is
    after one's entry and before the other's."""
    a, b = make_contacts(database, clock, 2)
    goal = automation(database, clock, GOAL.format(when="{event: {type: purchase}}", since=""))
    _enrol(database, clock, goal.id, [a])  # entered now; the engine has not run yet
    clock.advance(days=1)
    _purchases(database, clock, [a, b])
    clock.advance(days=1)
    _enrol(database, clock, goal.id, [b])
    stats = engine.run_until_idle()
    assert stats.batches == 1  # both runs in one batch, one goal query
    assert _goal_hits(database) == {a}


def test_counts_and_totals_since_entry(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    twice = automation(
        database,
        clock,
        GOAL.format(when="{event: {type: purchase, at_least: 2}}", since="").replace(
            "Buy", "Twice"
        ),
    )
    total = automation(
        database,
        clock,
        GOAL.format(when="{purchase_total: {op: gte, value: 50}}", since="")
        .replace("Buy", "Total")
        .replace("id: w,", "id: w2,"),
    )
    ids = make_contacts(database, clock, 3)
    _purchases(database, clock, ids, 40)
    clock.advance(hours=1)
    _enrol(database, clock, twice.id, ids)
    _enrol(database, clock, total.id, ids)
    engine.run_until_idle()
    clock.advance(hours=1)
    # One more purchase of 20 each: two purchases and 60 in all, but one and 20 since entry.
    _purchases(database, clock, ids, 20)
    engine.run_until_idle()
    assert _goal_hits(database) == set()
    assert {c for c, o, _ in step_entries(database, "w2") if o == "goal"} == set()
    clock.advance(hours=1)
    _purchases(database, clock, [ids[0]], 30)
    engine.run_until_idle()
    assert _goal_hits(database) == {ids[0]}  # two purchases since entry
    assert {c for c, o, _ in step_entries(database, "w2") if o == "goal"} == {ids[0]}  # 50


CONDITION_WAIT = """
name: Opened
steps:
  - id: w
    wait: {{condition: {{event: {{type: email_opened}}}}, timeout: {{days: 3}}, on_timeout: late{since}}}
  - {{id: opened, action: add_tag, tag: Opened, next: end}}
  - {{id: late, action: add_tag, tag: Late}}
"""


def test_condition_waits_see_events_since_entry(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    ids = make_contacts(database, clock, 3)
    _events(database, clock, [{"type": "email_opened", "contact_id": ids[0]}])
    clock.advance(minutes=5)
    new = automation(database, clock, CONDITION_WAIT.format(since=""))
    old = automation(
        database, clock, CONDITION_WAIT.format(since=", since: any").replace("Opened\n", "Old\n", 1)
    )
    _enrol(database, clock, new.id, ids)
    _enrol(database, clock, old.id, ids)
    engine.run_until_idle()
    passed = {e.contact_id for e in enrolments(database, new.id) if e.state != "active"}
    assert passed == set()  # the open before entering does not end the wait
    assert {e.contact_id for e in enrolments(database, old.id) if e.state != "active"} == {ids[0]}
    clock.advance(hours=1)
    _events(database, clock, [{"type": "email_opened", "contact_id": ids[1]}])
    engine.run_until_idle()
    assert {e.contact_id for e in enrolments(database, new.id) if e.state != "active"} == {ids[1]}
    clock.advance(days=3)
    engine.run_until_idle()
    late = [c for c, o, _ in step_entries(database, "late") if o == "passed"]
    assert sorted(late).count(ids[0]) == 1  # timed out in the new one only
    assert timedelta(0) < clock.now() - enrolments(database, new.id)[0].entered_at
