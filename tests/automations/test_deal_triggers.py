"""Deal triggers: each fires on its deal activity (only on a real change), starts the deal's
primary contact or all its contacts, and the run knows its deal; runs once = per (contact, deal)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tidings.automations.engine import Engine
from tidings.clock import FakeClock
from tidings.db.engine import Database

from .deal_helpers import deal_runs, make_crm
from .helpers import automation


def _auto(database: Database, clock: FakeClock, trigger: str, runs: str = "once") -> int:
    text = f"""
name: Deal automation
trigger: {trigger}
runs: {runs}
steps:
  - {{id: tag, action: add_tag, tag: Moved}}
"""
    return automation(database, clock, text).id


def test_stage_changed_fires_on_a_real_change_with_from_and_to(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    aid = _auto(
        database, clock, "{type: deal_stage_changed, pipeline: Sales, from: Lead, to: Proposal}"
    )
    engine.run_until_idle()
    matching, other = crm.deal(), crm.deal(contact=crm.contacts[1])
    crm.update(matching, stage="Proposal")  # Lead -> Proposal: fires
    crm.update(other, stage="Qualified")  # Lead -> Qualified: not this one
    crm.update(matching, stage="Proposal", title="Renamed")  # same stage: no stage change
    engine.run_until_idle()
    assert deal_runs(database, aid) == [(crm.contacts[0], matching, "completed")]
    crm.update(other, stage="Lead")
    crm.move([other], "Proposal")  # a bulk move counts like any other
    engine.run_until_idle()
    assert deal_runs(database, aid)[-1] == (crm.contacts[1], other, "completed")


def test_stage_by_id_and_any_pipeline(database: Database, clock: FakeClock, engine: Engine) -> None:
    crm = make_crm(database, clock)
    aid = _auto(
        database, clock, f"{{type: deal_stage_changed, to: {crm.stage('Renewals/Renewed')}}}"
    )
    engine.run_until_idle()
    deal = crm.deal(stage="Renewals/Due")
    crm.update(deal, stage="Renewals/Renewed")
    engine.run_until_idle()
    assert [d for _, d, _ in deal_runs(database, aid)] == [deal]


def test_runs_once_is_once_per_contact_and_deal(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    aid = _auto(database, clock, "{type: deal_stage_changed, to: Proposal}")
    engine.run_until_idle()
    first, second = crm.deal(), crm.deal()  # the same contact
    crm.move([first, second], "Proposal")
    engine.run_until_idle()
    crm.move([first], "Lead")
    crm.move([first], "Proposal")  # again: runs once per (contact, deal)
    engine.run_until_idle()
    runs = deal_runs(database, aid)
    assert sorted(d for _, d, _ in runs) == [first, second]


def test_runs_multiple_runs_again_for_the_same_deal(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    aid = _auto(database, clock, "{type: deal_stage_changed, to: Proposal}", runs="multiple")
    engine.run_until_idle()
    deal = crm.deal()
    for _ in range(2):
        crm.move([deal], "Proposal")
        crm.move([deal], "Lead")
        engine.run_until_idle()
    assert deal_runs(database, aid) == [(crm.contacts[0], deal, "completed")] * 2


def test_contacts_all_starts_every_contact_of_the_deal(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    aid = _auto(database, clock, "{type: deal_stage_changed, to: Won, contacts: all}")
    primary_only = _auto_named(database, clock, "{type: deal_stage_changed, to: Won}")
    engine.run_until_idle()
    deal = crm.deal(contact_ids=[crm.contacts[1], crm.contacts[2]])
    crm.update(deal, stage="Won")
    engine.run_until_idle()
    assert sorted(c for c, _, _ in deal_runs(database, aid)) == sorted(crm.contacts)
    assert [c for c, _, _ in deal_runs(database, primary_only)] == [crm.contacts[0]]


def _auto_named(database: Database, clock: FakeClock, trigger: str) -> int:
    text = f"""
name: Primary only
trigger: {trigger}
steps:
  - {{id: tag, action: add_tag, tag: Primary}}
"""
    return automation(database, clock, text).id


def test_entered_pipeline_on_create_and_on_a_move_from_another_pipeline(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    aid = _auto(
        database, clock, "{type: deal_entered_pipeline, pipeline: Renewals}", runs="multiple"
    )
    engine.run_until_idle()
    created = crm.deal(stage="Renewals/Due")
    moved = crm.deal(contact=crm.contacts[1])
    crm.deal(contact=crm.contacts[2])  # created in Sales: not this one
    crm.update(moved, stage="Renewals/Due")
    crm.update(created, stage="Renewals/Renewed")  # within the pipeline: not an entry
    engine.run_until_idle()
    assert sorted(d for _, d, _ in deal_runs(database, aid)) == sorted([created, moved])


def test_status_value_owner_and_field_triggers(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    won = _auto(database, clock, "{type: deal_status_changed, to: won}")
    up = _auto_named(database, clock, "{type: deal_value_changed, direction: up}")
    owner = automation(
        database,
        clock,
        """
name: Owner
trigger: {type: deal_owner_changed, to: bob@example.com}
steps: [{id: t, action: add_tag, tag: Bob}]
""",
    ).id
    field = automation(
        database,
        clock,
        """
name: Field
trigger: {type: deal_field_changed, field: title, to: Big}
steps: [{id: t, action: add_tag, tag: Big}]
""",
    ).id
    engine.run_until_idle()
    deal = crm.deal(value=100)
    crm.update(deal, status="lost")  # not won
    crm.update(deal, value=50)  # down
    crm.update(deal, owner_id=crm.users[0])  # Ann
    crm.update(deal, title="Small")
    engine.run_until_idle()
    assert [deal_runs(database, a) for a in (won, up, owner, field)] == [[], [], [], []]
    crm.update(deal, status="won", value=500, owner_id=crm.users[1], title="Big")
    engine.run_until_idle()
    for aid in (won, up, owner, field):
        assert deal_runs(database, aid) == [(crm.contacts[0], deal, "completed")]


def test_score_threshold_is_not_retroactive(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    high = crm.deal()
    crm.adjust_score(high, 60)  # past the threshold before the automation exists
    aid = _auto(database, clock, "{type: deal_score_threshold, threshold: 50}", runs="multiple")
    engine.run_until_idle()
    crm.adjust_score(high, 10)  # 60 -> 70: no crossing
    low = crm.deal(contact=crm.contacts[1])
    crm.adjust_score(low, 30)
    engine.run_until_idle()
    assert deal_runs(database, aid) == []
    crm.adjust_score(low, 20)  # 30 -> 50: crosses
    crm.adjust_score(high, -30)  # down: not this direction
    engine.run_until_idle()
    assert deal_runs(database, aid) == [(crm.contacts[1], low, "completed")]


def test_task_triggers_with_a_type(database: Database, clock: FakeClock, engine: Engine) -> None:
    crm = make_crm(database, clock)
    created = _auto(database, clock, "{type: deal_task_created}", runs="multiple")
    calls_done = _auto_named(database, clock, "{type: deal_task_completed, task_type: call}")
    engine.run_until_idle()
    deal = crm.deal()
    meeting = crm.task(deal, "meeting")
    crm.complete(meeting)
    engine.run_until_idle()
    assert [d for _, d, _ in deal_runs(database, created)] == [deal]
    assert deal_runs(database, calls_done) == []
    crm.task(deal, "call", done=True)
    engine.run_until_idle()
    assert [d for _, d, _ in deal_runs(database, calls_done)] == [deal]


def test_email_sent_and_replied(database: Database, clock: FakeClock, engine: Engine) -> None:
    crm = make_crm(database, clock)
    sent = _auto(database, clock, "{type: deal_email_sent}")
    replied = _auto_named(database, clock, "{type: deal_email_replied, contacts: all}")
    engine.run_until_idle()
    deal = crm.deal(contact_ids=[crm.contacts[1]])
    crm.email_activity(deal, "deal_email_sent")
    engine.run_until_idle()
    assert [d for _, d, _ in deal_runs(database, sent)] == [deal]
    assert deal_runs(database, replied) == []
    crm.email_activity(deal, "deal_email_replied")
    engine.run_until_idle()
    assert sorted(c for c, _, _ in deal_runs(database, replied)) == crm.contacts[:2]


def test_through_the_api_the_run_shows_its_deal(
    client: TestClient, database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    body = {
        "definition": {
            "name": "Won",
            "trigger": {"type": "deal_status_changed", "to": "won"},
            "steps": [{"id": "t", "action": "add_task", "title": "Send the invoice"}],
        }
    }
    assert client.post("/api/v1/automations", json=body).status_code == 201
    engine.run_until_idle()
    deal = client.post(
        "/api/v1/deals",
        json={"title": "Big", "contact_id": crm.contacts[0], "pipeline_id": crm.pipelines["Sales"]},
    ).json()["id"]
    assert client.patch(f"/api/v1/deals/{deal}", json={"status": "won"}).status_code == 200
    engine.run_until_idle()
    (run,) = client.get(f"/api/v1/contacts/{crm.contacts[0]}/automations").json()
    assert (run["deal_id"], run["state"]) == (deal, "completed")
    tasks = client.get("/api/v1/tasks", params={"deal": deal}).json()["items"]
    assert [t["title"] for t in tasks] == ["Send the invoice"]


def test_a_1to1_email_sent_through_the_api_starts_its_recipient_for_the_deal(
    client: TestClient, database: Database, clock: FakeClock, engine: Engine
) -> None:
    crm = make_crm(database, clock)
    aid = _auto(database, clock, "{type: deal_email_sent}")
    engine.run_until_idle()
    deal = crm.deal(owner_id=crm.users[0], contact_ids=[crm.contacts[1]])
    response = client.post(
        f"/api/v1/deals/{deal}/emails",
        json={"subject": "Your quote", "body": "Here it is.", "to": "c1@example.com"},
    )
    assert response.status_code == 201, response.text
    engine.run_until_idle()
    assert deal_runs(database, aid) == [(crm.contacts[1], deal, "completed")]
