"""REST: create from YAML/JSON with path errors, versions, enrol, per-step counts, history."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.automations.helpers import make_contacts
from tidings.automations.engine import Engine
from tidings.clock import FakeClock
from tidings.db.engine import Database

DRIP = """
name: Drip
steps:
  - {id: hello, action: add_tag, tag: Hello}
  - {id: pause, wait: {days: 3}}
  - {id: bye, action: add_tag, tag: Bye}
"""


def test_create_errors_name_the_path(client: TestClient) -> None:
    response = client.post(
        "/api/v1/automations",
        json={
            "yaml": "name: x\nsteps:\n  - {id: a, action: add_tag}\n  - {id: b, goto: nowhere}\n"
        },
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == ["steps[0].tag", "steps[1].goto"]  # every problem in one answer
    response = client.post(
        "/api/v1/automations",
        json={"definition": {"name": "x", "steps": [{"id": "b", "goto": "nowhere"}]}},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "field": "steps[0].goto",
        "message": "unknown step id 'nowhere'",
    }
    assert client.post("/api/v1/automations", json={"yaml": "name: [unclosed"}).status_code == 422


def test_conditions_in_a_definition_are_bounded_too(client: TestClient) -> None:
    wide = {"or": [{"has_tag": f"t{i}"} for i in range(150)]}
    condition = {"and": [wide, wide, wide, wide]}  # 605 conditions
    definition = {
        "name": "Wide",
        "steps": [
            {"id": "check", "if": condition, "then": "end", "else": "end"},
        ],
    }
    response = client.post("/api/v1/automations", json={"definition": definition})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0] == {
        "field": "steps[0].if.and[3].or[45]",
        "message": "more than 500 conditions in all (the limit per condition)",
    }


def test_lifecycle_versions_counts_and_history(
    client: TestClient, database: Database, clock: FakeClock
) -> None:
    ids = make_contacts(database, clock, 4)
    created = client.post("/api/v1/automations", json={"yaml": DRIP})
    assert created.status_code == 201, created.text
    automation_id = created.json()["id"]
    enrolled = client.post(
        f"/api/v1/automations/{automation_id}/enrol", json={"contact_ids": ids[:3]}
    )
    assert enrolled.json() == {"enrolled": 3}
    again = client.post(f"/api/v1/automations/{automation_id}/enrol", json={"all": True})
    assert again.json() == {"enrolled": 1}  # runs once: only the fourth is new
    Engine(database, clock).run_until_idle()
    body = client.get(f"/api/v1/automations/{automation_id}").json()
    steps = {s["id"]: s for s in body["steps"]}
    assert steps["hello"]["passed"] == 4
    assert steps["pause"]["waiting"] == 4
    assert body["enrolments"] == {"active": 4}

    # Removing the step contacts wait in is refused with the count...
    removed = DRIP.replace("  - {id: pause, wait: {days: 3}}\n", "")
    refused = client.put(f"/api/v1/automations/{automation_id}", json={"yaml": removed})
    assert refused.status_code == 409
    assert "4 contact(s) in step 'pause'" in refused.json()["detail"]
    # ... unless they are mapped to a step of the new version.
    edited = DRIP.replace(
        "{id: bye, action: add_tag, tag: Bye}", "{id: bye, action: add_tag, tag: Ciao}"
    )
    kept = client.put(f"/api/v1/automations/{automation_id}", json={"yaml": edited})
    assert kept.status_code == 200
    assert kept.json()["version"] == 2 and kept.json()["versions"] == [1, 2]
    clock.advance(days=4)
    Engine(database, clock).run_until_idle()
    history = client.get(f"/api/v1/contacts/{ids[0]}/automations").json()
    (run,) = history
    assert run["version"] == 1  # enrolments keep their version: the old tag
    assert run["state"] == "completed"
    assert [h["step"] for h in history[0]["history"]] == ["hello", "pause", "bye"]
    assert (
        client.get(f"/api/v1/automations/{automation_id}/versions/1").json()["definition"]["name"]
        == "Drip"
    )
    assert client.delete(f"/api/v1/automations/{automation_id}").status_code == 204
    assert client.get(f"/api/v1/automations/{automation_id}").status_code == 404


def test_step_mapping_moves_waiting_contacts(
    client: TestClient, database: Database, clock: FakeClock
) -> None:
    ids = make_contacts(database, clock, 2)
    automation_id = client.post("/api/v1/automations", json={"yaml": DRIP}).json()["id"]
    client.post(f"/api/v1/automations/{automation_id}/enrol", json={"contact_ids": ids})
    Engine(database, clock).run_until_idle()
    new = """
name: Drip
steps:
  - {id: hello, action: add_tag, tag: Hello}
  - {id: short, wait: {hours: 1}}
  - {id: bye, action: add_tag, tag: Moved}
"""
    moved = client.put(
        f"/api/v1/automations/{automation_id}",
        json={"yaml": new, "step_mapping": {"pause": "short"}},
    )
    assert moved.status_code == 200, moved.text
    Engine(database, clock).run_until_idle()  # the moved contacts start their new wait now
    clock.advance(hours=2)
    Engine(database, clock).run_until_idle()
    (run,) = client.get(f"/api/v1/contacts/{ids[0]}/automations").json()
    assert run["version"] == 2 and run["state"] == "completed"
    assert client.get("/api/v1/contacts/99999/automations").status_code == 404


def test_unknown_references_are_reported_and_can_be_created(client: TestClient) -> None:
    text = """
name: Refs
trigger: {type: tag_added, tag: Brand new}
steps:
  - {id: a, action: subscribe_list, list: Fresh list}
  - {id: b, action: set_field, field: no_such_field, value: 1}
  - {id: c, action: send_email, template: missing}
  - {id: d, action: start_automation, automation: Nowhere}
"""
    body = client.post("/api/v1/automations", json={"yaml": text}).json()
    fields = {w["field"]: w for w in body["warnings"]}
    assert set(fields) == {
        "trigger.tag",
        "steps[0].list",
        "steps[1].field",
        "steps[2].template",
        "steps[3].automation",
    }
    assert fields["trigger.tag"]["offer"] == "create"
    again = client.put(
        f"/api/v1/automations/{body['id']}", json={"yaml": text, "create_missing": True}
    ).json()
    assert {w["field"] for w in again["warnings"]} == {
        "steps[1].field",
        "steps[2].template",
        "steps[3].automation",
    }


def test_conditions_and_trigger_fields_are_checked_against_the_database(
    client: TestClient,
) -> None:
    """Tags, lists and custom fields named in if steps, goals, condition waits and a field
    trigger are warned about too (a typo there matches nobody, silently)."""
    text = """
name: Conditions
trigger: {type: field_changed, field: plann}
steps:
  - {id: check, if: {and: [{has_tag: Vip}, {not: {in_list: Ghost}}]}, then: wait}
  - {id: wait, wait: {condition: {field: tier, op: eq, value: gold}, timeout: {days: 1}}}
goals:
  - {id: g, when: {or: [{status: subscribed}, {lacks_tag: Churned}]}, jump_to: end}
"""
    body = client.post("/api/v1/automations", json={"yaml": text}).json()
    assert body["warnings"] == [
        {"field": "trigger.field", "message": "custom field 'plann' does not exist"},
        {"field": "steps[0].if.and[0].has_tag", "message": "tag 'Vip' does not exist"},
        {"field": "steps[0].if.and[1].not.in_list", "message": "list 'Ghost' does not exist"},
        {"field": "steps[1].wait.condition.field", "message": "custom field 'tier' does not exist"},
        {"field": "goals[0].when.or[1].lacks_tag", "message": "tag 'Churned' does not exist"},
    ]


def test_end_runs_then_delete_a_paused_automation(
    client: TestClient, database: Database, clock: FakeClock
) -> None:
    ids = make_contacts(database, clock, 5)
    multiple = DRIP.replace("name: Drip", "name: Drip\nruns: multiple")
    automation_id = client.post("/api/v1/automations", json={"yaml": multiple}).json()["id"]
    client.post(f"/api/v1/automations/{automation_id}/enrol", json={"all": True})
    Engine(database, clock).run_until_idle()
    client.post(f"/api/v1/automations/{automation_id}/status", json={"status": "paused"})
    refused = client.delete(f"/api/v1/automations/{automation_id}")
    assert refused.status_code == 409
    assert "end their runs first" in refused.json()["detail"]

    url = f"/api/v1/automations/{automation_id}/end-runs"
    one = client.post(url, json={"contact_ids": [ids[0]], "reason": "asked to stop"})
    assert one.status_code == 200, one.text
    assert one.json() == {"ended": 1, "by_step": {"pause": 1}}
    unknown = client.post(url, json={"step": "nowhere"})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "step"
    assert client.post(url, json={"step": "hello"}).json() == {"ended": 0, "by_step": {}}
    rest = client.post(url, json={"step": "pause"})
    assert rest.json() == {"ended": 4, "by_step": {"pause": 4}}
    assert client.post(url).json() == {"ended": 0, "by_step": {}}  # no body: every run

    body = client.get(f"/api/v1/automations/{automation_id}").json()
    assert body["enrolments"] == {"exited": 5}
    steps = {s["id"]: s for s in body["steps"]}
    assert steps["pause"]["exited"] == 5 and steps["pause"]["waiting"] == 0
    (run,) = client.get(f"/api/v1/contacts/{ids[0]}/automations").json()
    assert run["state"] == "exited" and run["end_reason"] == "asked to stop"
    assert run["history"][-1]["outcome"] == "exited"
    (other,) = client.get(f"/api/v1/contacts/{ids[1]}/automations").json()
    assert other["end_reason"] == "runs ended by hand"
    # Runs multiple: an ended run frees the contact to enter again.
    client.post(f"/api/v1/automations/{automation_id}/status", json={"status": "active"})
    again = client.post(f"/api/v1/automations/{automation_id}/enrol", json={"contact_ids": ids})
    assert again.json() == {"enrolled": 5}
    client.post(url)
    assert client.delete(f"/api/v1/automations/{automation_id}").status_code == 204
    assert client.post(url).status_code == 404
