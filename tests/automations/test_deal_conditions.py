"""Conditions about a contact's deals (has_deal) and the run's deal (triggered_deal): in
if/else, condition waits and goals; has_deal in segments too."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tidings.automations.engine import Engine
from tidings.clock import FakeClock
from tidings.contacts.models import Contact
from tidings.db.engine import Database
from tidings.errors import ValidationFailed
from tidings.segments import condition_sql, parse_condition

from .deal_helpers import deal_runs, make_crm, tag
from .helpers import automation, step_entries, tags_of


def test_if_has_deal_in_pipeline_at_stage_with_a_value(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    automation(
        database,
        clock,
        """
name: Check
trigger: {type: tag_added, tag: Check}
steps:
  - id: c
    if: {has_deal: {pipeline: Sales, stage: Proposal, status: open,
                    where: [{field: value, op: gte, value: 1000}]}}
    then: match
    else: other
  - {id: match, action: add_tag, tag: Big proposal, next: end}
  - {id: other, action: add_tag, tag: Nothing}
""",
    )
    engine.run_until_idle()
    a, b, c = crm.contacts
    crm.deal(contact=a, stage="Proposal", value=5000)
    crm.deal(contact=b, stage="Proposal", value=10)  # too small
    crm.deal(contact=c, stage="Lead", value=5000, contact_ids=[b])  # wrong stage
    for contact_id in crm.contacts:
        tag(database, clock, contact_id, "Check")
    engine.run_until_idle()
    assert [("Big proposal" in tags_of(database, x)) for x in crm.contacts] == [
        True,
        False,
        False,
    ]


def test_triggered_deal_decides_per_deal_for_the_same_contact(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    automation(
        database,
        clock,
        """
name: Score by size
trigger: {type: deal_stage_changed, to: Proposal}
steps:
  - id: c
    if: {triggered_deal: {pipeline: Sales, where: [{field: value, op: gte, value: 1000}]}}
    then: big
  - {id: small, action: adjust_deal_score, by: 1, next: end}
  - {id: big, action: adjust_deal_score, by: 10}
""",
    )
    engine.run_until_idle()
    big, small = crm.deal(value=5000), crm.deal(value=5)  # one contact, two deals
    crm.move([big, small], "Proposal")
    engine.run_until_idle()
    assert (crm.get(big).score, crm.get(small).score) == (10, 1)


def test_wait_until_the_triggered_deal_is_won_and_a_goal_on_has_deal(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    aid = automation(
        database,
        clock,
        """
name: Chase
trigger: {type: deal_stage_changed, to: Proposal, contacts: all}
runs: multiple
steps:
  - {id: w, wait: {condition: {triggered_deal: {status: won}}, timeout: {days: 7}, on_timeout: late}}
  - {id: thanks, action: add_tag, tag: Thanks, next: end}
  - {id: late, action: add_tag, tag: Late}
goals:
  - {id: lost, when: {has_deal: {status: lost, stage: Proposal}}, jump_to: end}
""",
    ).id
    engine.run_until_idle()
    won = crm.deal(contact_ids=[crm.contacts[1]])
    slow = crm.deal(contact=crm.contacts[2])
    crm.move([won, slow], "Proposal")
    engine.run_until_idle()
    assert all(state == "active" for _, _, state in deal_runs(database, aid))
    crm.update(won, status="won")  # wakes both contacts' runs of this deal
    engine.run_until_idle()
    assert "Thanks" in tags_of(database, crm.contacts[0])
    assert "Thanks" in tags_of(database, crm.contacts[1])
    assert "Thanks" not in tags_of(database, crm.contacts[2])
    clock.advance(timedelta(days=8))
    engine.run_until_idle()
    assert "Late" in tags_of(database, crm.contacts[2])
    assert [o for _, o, _ in step_entries(database, "w")].count("timed_out") == 1


def test_goal_on_has_deal_ends_the_run(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    aid = automation(
        database,
        clock,
        """
name: Until lost
trigger: {type: deal_stage_changed, to: Proposal}
steps:
  - {id: w, wait: {days: 30}}
  - {id: t, action: add_tag, tag: Waited}
goals:
  - {id: lost, when: {has_deal: {status: lost, stage: Proposal}}, jump_to: end}
""",
    ).id
    engine.run_until_idle()
    deal = crm.deal()
    crm.move([deal], "Proposal")
    engine.run_until_idle()
    crm.update(deal, status="lost")
    engine.run_until_idle()
    assert deal_runs(database, aid) == [(crm.contacts[0], deal, "completed")]
    assert [o for _, o, _ in step_entries(database, "w")] == ["goal"]


def test_has_deal_in_a_segment_and_triggered_deal_only_in_automations(
    database: Database, clock: FakeClock
) -> None:
    crm = make_crm(database, clock)
    crm.deal(contact=crm.contacts[1], owner_id=crm.users[1])
    condition = parse_condition({"has_deal": {"owner": "BOB@example.com", "status": "open"}})
    with database.session() as session:
        found = list(
            session.scalars(select(Contact.id).where(condition_sql(condition, clock.now())))
        )
    assert found == [crm.contacts[1]]
    with pytest.raises(ValidationFailed, match="triggered_deal: triggered_deal applies only"):
        parse_condition({"triggered_deal": {"status": "won"}})
    with pytest.raises(ValidationFailed, match=r"has_deal.colour: unknown key"):
        parse_condition({"has_deal": {"colour": "red"}})
    with pytest.raises(ValidationFailed, match=r"has_deal.where\[0\].op"):
        parse_condition({"has_deal": {"where": [{"field": "value", "op": "nope", "value": 1}]}})
