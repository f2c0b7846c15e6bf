"""Deal actions: add deal (personalised title, named or round-robin owner), update deal, adjust
deal score, add task, complete task, add note — on the triggered deal unless another is named."""

from __future__ import annotations

from datetime import timedelta

from tidings.automations.engine import Engine
from tidings.clock import FakeClock
from tidings.db.engine import Database

from .deal_helpers import deal_runs, make_crm, name_contacts, tag
from .helpers import automation, step_entries


def test_add_deal_with_a_personalised_title_and_round_robin_owners(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    name_contacts(database, clock, {crm.contacts[0]: "Ann", crm.contacts[1]: "Bob"})
    aid = automation(
        database,
        clock,
        """
name: Upsell
trigger: {type: tag_added, tag: Upsell}
steps:
  - id: deal
    action: add_deal
    pipeline: Sales
    stage: Qualified
    title: "{{ contact.first_name }} \\u2013 Upgrade"
    value: 125000
    owner: {round_robin: [ann@example.com, bob@example.com]}
  - {id: call, action: add_task, type: call, title: "Call {{ contact.first_name }}", due_in_days: 2}
""",
    ).id
    engine.run_until_idle()
    for contact_id in crm.contacts:
        tag(database, clock, contact_id, "Upsell")
        engine.run_until_idle()
    runs = deal_runs(database, aid)
    assert [state for _, _, state in runs] == ["completed"] * 3
    deals = [crm.get(deal_id) for _, deal_id, _ in runs if deal_id is not None]
    dash = "\u2013"  # the en dash of the title
    assert [d.title for d in deals] == [
        f"Ann {dash} Upgrade",
        f"Bob {dash} Upgrade",
        f"{dash} Upgrade",
    ]
    assert [d.owner_id for d in deals] == [crm.users[0], crm.users[1], crm.users[0]]
    assert {(d.value, d.stage_id, d.contact_id) for d in deals[:1]} == {
        (125000, crm.stage("Qualified"), crm.contacts[0])
    }
    # add_task acted on the deal the run created, assigned to its owner
    task = crm.tasks(deals[1].id)[0]
    assert (task.type, task.title, task.assignee_id) == ("call", "Call Bob", crm.users[1])
    assert task.due_at == clock.now() + timedelta(days=2)


def test_stage_driven_update_score_task_note_on_the_triggered_deal(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    automation(
        database,
        clock,
        """
name: Proposal sent
trigger: {type: deal_stage_changed, pipeline: Sales, to: Proposal}
steps:
  - {id: score, action: adjust_deal_score, by: 10}
  - {id: task, action: add_task, type: call, title: Follow up, assignee: bob@example.com}
  - {id: note, action: add_note, body: "Proposal sent to {{ contact.email }}"}
  - {id: bump, action: update_deal, value: 999, owner: ann@example.com, title: Hot}
""",
    )
    automation(
        database,
        clock,
        """
name: Won
trigger: {type: deal_status_changed, to: won}
steps:
  - {id: done, action: complete_task, type: call}
  - {id: move, action: update_deal, stage: Won}
""",
    )
    engine.run_until_idle()
    deal, other = crm.deal(), crm.deal(contact=crm.contacts[1])
    crm.update(deal, stage="Proposal")
    engine.run_until_idle()
    got = crm.get(deal)
    assert (got.score, got.value, got.owner_id, got.title) == (10, 999, crm.users[0], "Hot")
    assert crm.get(other).score == 0
    (task,) = crm.tasks(deal)
    assert (task.type, task.title, task.assignee_id, task.done_at) == (
        "call",
        "Follow up",
        crm.users[1],
        None,
    )
    assert [n.body for n in crm.notes(deal)] == ["Proposal sent to c0@example.com"]
    crm.task(deal, "meeting")
    crm.update(deal, status="won")
    engine.run_until_idle()
    done = {t.type: t.done_at is not None for t in crm.tasks(deal)}
    assert done == {"call": True, "meeting": False}
    assert crm.get(deal).stage_id == crm.stage("Won")


def test_a_named_deal_and_a_run_without_a_deal(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    automation(
        database,
        clock,
        """
name: Renew
trigger: {type: tag_added, tag: Renew}
steps:
  - {id: renew, action: update_deal, stage: Renewed, deal: {pipeline: Renewals}}
  - {id: score, action: adjust_deal_score, by: 3}
""",
    )
    engine.run_until_idle()
    older = crm.deal(stage="Renewals/Due")
    newer = crm.deal(stage="Renewals/Due")
    sales = crm.deal()
    tag(database, clock, crm.contacts[0], "Renew")
    tag(database, clock, crm.contacts[1], "Renew")  # no deal at all
    engine.run_until_idle()
    assert crm.get(newer).stage_id == crm.stage("Renewals/Renewed")
    assert crm.get(older).stage_id == crm.stage("Renewals/Due")
    # No triggered deal and no `deal:`: the contact's newest open deal
    assert crm.get(sales).score == 3
    failed = [(c, o, d) for c, o, d in step_entries(database, "renew") if o == "failed"]
    assert failed == [(crm.contacts[1], "failed", "no deal to act on")]


def test_a_bad_update_fails_its_runs_with_the_reason(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    automation(
        database,
        clock,
        """
name: Bad stage
trigger: {type: deal_stage_changed, to: Qualified}
steps:
  - {id: move, action: update_deal, stage: Nowhere}
  - {id: tag, action: add_tag, tag: After}
""",
    )
    engine.run_until_idle()
    deal = crm.deal()
    crm.update(deal, stage="Qualified")
    engine.run_until_idle()
    entries = step_entries(database, "move")
    assert entries == [(crm.contacts[0], "failed", "stage 'Nowhere' does not exist in pipeline 1")]
    assert step_entries(database, "tag")[0][1] == "passed"  # the run went on
