"""Deals through the API: create, read, update with one activity per changed aspect, filters,
keyset pages, delete, and bad input answered with problem+json naming the field."""

from __future__ import annotations

from datetime import timedelta

from tests.deals.helpers import Crm, ok, problem
from tidings.clock import FakeClock


def test_create_defaults_and_timeline(crm: Crm) -> None:
    deal = crm.deal(title="Upgrade", value=125_000, contact_ids=[crm.contacts[1]])
    assert deal["stage_id"] == crm.stages[0]  # the pipeline's first stage
    assert deal["currency"] == "EUR"  # the pipeline's
    assert deal["status"] == "open" and deal["closed_at"] is None
    assert deal["contact_ids"] == [crm.contacts[0], crm.contacts[1]]
    assert deal["score"] == 0
    (created,) = crm.timeline(deal["id"])
    assert created["type"] == "deal_created"
    assert created["data"]["stage_id"] == crm.stages[0] and created["data"]["value"] == 125_000
    assert ok(crm.client.get(f"/api/v1/deals/{deal['id']}")) == deal


def test_update_writes_one_activity_per_change(crm: Crm, clock: FakeClock) -> None:
    deal = crm.deal(title="Upgrade", value=100)
    clock.advance(minutes=5)
    body = {
        "stage_id": crm.stages[2],
        "value": 900,
        "owner_id": crm.users[0],
        "title": "Big upgrade",
        "status": "lost",
        "lost_reason": "price",
    }
    after = ok(crm.client.patch(f"/api/v1/deals/{deal['id']}", json=body))
    assert after["closed_at"] == clock.now().isoformat().replace("+00:00", "Z")
    assert after["lost_reason"] == "price"
    types = {a["type"]: a["data"] for a in crm.timeline(deal["id"])}
    assert types["deal_stage_changed"] == {
        "pipeline_id": crm.pipeline,
        "from_pipeline_id": crm.pipeline,
        "from_stage_id": crm.stages[0],
        "to_stage_id": crm.stages[2],
    }
    assert types["deal_status_changed"] == {"old": "open", "new": "lost", "lost_reason": "price"}
    assert types["deal_owner_changed"] == {"old": None, "new": crm.users[0]}
    assert types["deal_value_changed"] == {"old": 100, "new": 900, "currency": "EUR"}
    assert types["deal_field_changed"] == {"field": "title", "old": "Upgrade", "new": "Big upgrade"}
    # the activity rows name the deal's primary contact, so the contact's timeline has them
    contact_timeline = ok(crm.client.get(f"/api/v1/contacts/{crm.contacts[0]}/timeline"))
    assert {"deal_created", "deal_stage_changed"} <= {a["type"] for a in contact_timeline["items"]}


def test_an_update_that_keeps_the_stage_writes_no_stage_activity(crm: Crm) -> None:
    deal = crm.deal()
    ok(crm.client.patch(f"/api/v1/deals/{deal['id']}", json={"stage_id": crm.stages[0]}))
    ok(crm.client.patch(f"/api/v1/deals/{deal['id']}", json={"pipeline_id": crm.pipeline}))
    ok(crm.client.patch(f"/api/v1/deals/{deal['id']}", json={"title": "Deal"}))
    assert [a["type"] for a in crm.timeline(deal["id"])] == ["deal_created"]


def test_reopening_clears_the_closing(crm: Crm) -> None:
    deal = crm.deal(status="won")
    assert deal["closed_at"] is not None
    reopened = ok(crm.client.patch(f"/api/v1/deals/{deal['id']}", json={"status": "open"}))
    assert reopened["closed_at"] is None and reopened["status"] == "open"


def test_further_contacts_see_the_deal_on_their_timeline(crm: Crm) -> None:
    deal = crm.deal(contact_ids=[crm.contacts[1]])
    ok(crm.client.patch(f"/api/v1/deals/{deal['id']}", json={"value": 5}))
    items = ok(crm.client.get(f"/api/v1/contacts/{crm.contacts[1]}/timeline"))["items"]
    assert [a["type"] for a in items if a["type"].startswith("deal_")] == [
        "deal_value_changed",
        "deal_created",
    ]
    other = ok(crm.client.get(f"/api/v1/contacts/{crm.contacts[2]}/timeline"))["items"]
    assert not [a for a in other if a["type"].startswith("deal_")]
    # changing the contacts is a change of the deal too
    after = ok(
        crm.client.patch(
            f"/api/v1/deals/{deal['id']}",
            json={"contact_id": crm.contacts[2], "contact_ids": [crm.contacts[0]]},
        )
    )
    assert after["contact_ids"] == [crm.contacts[2], crm.contacts[0]]
    change = next(a for a in crm.timeline(deal["id"]) if a["type"] == "deal_contacts_changed")
    assert change["data"] == {
        "old_primary": crm.contacts[0],
        "new_primary": crm.contacts[2],
        "added": [crm.contacts[2]],
        "removed": [crm.contacts[1]],
    }


def test_filters_and_keyset_pages(crm: Crm, clock: FakeClock) -> None:
    first = crm.deal(title="Alpha renewal", value=500, owner_id=crm.users[0])
    clock.advance(days=1)
    crm.deal(title="Beta upgrade", value=5_000, stage_id=crm.stages[1], contact_id=crm.contacts[1])
    crm.deal(title="Gamma renewal", value=50_000, status="won", owner_id=crm.users[1])

    def ids(**params: object) -> list[int]:
        page = ok(crm.client.get("/api/v1/deals", params=params))
        return [d["id"] for d in page["items"]]

    a, b, c = ids()
    assert ids(q="RENEWAL") == [a, c]
    assert ids(stage=crm.stages[1]) == [b]
    assert ids(status="won") == [c]
    assert ids(owner=crm.users[0]) == [a]
    assert ids(contact=crm.contacts[1]) == [b]
    assert ids(value_min=1_000, value_max=10_000) == [b]
    assert ids(created_since=clock.now().isoformat()) == [b, c]
    assert ids(closed_since=(clock.now() - timedelta(hours=1)).isoformat()) == [c]
    assert ids(pipeline=crm.pipeline, status="open") == [a, b]
    page = ok(crm.client.get("/api/v1/deals", params={"limit": 2}))
    assert [d["id"] for d in page["items"]] == [a, b]
    rest = ok(crm.client.get("/api/v1/deals", params={"limit": 2, "cursor": page["next_cursor"]}))
    assert [d["id"] for d in rest["items"]] == [c] and rest["next_cursor"] is None
    assert first["id"] == a


def test_delete_keeps_the_history(crm: Crm) -> None:
    deal = crm.deal()
    ok(crm.client.post("/api/v1/tasks", json={"title": "Call", "deal_id": deal["id"]}), 201)
    assert crm.client.delete(f"/api/v1/deals/{deal['id']}").status_code == 204
    problem(crm.client.get(f"/api/v1/deals/{deal['id']}"), 404)
    assert ok(crm.client.get("/api/v1/tasks", params={"deal": deal["id"]}))["items"] == []
    items = ok(crm.client.get(f"/api/v1/contacts/{crm.contacts[0]}/timeline"))["items"]
    assert items[0]["type"] == "deal_deleted"


def test_bad_input_names_the_field(crm: Crm) -> None:
    other = ok(
        crm.client.post(
            "/api/v1/pipelines",
            json={"name": "Partners", "currency": "usd", "stages": [{"title": "New"}]},
        ),
        201,
    )
    assert other["currency"] == "USD"
    base = {"title": "T", "contact_id": crm.contacts[0], "pipeline_id": crm.pipeline}
    cases = [
        ({"stage_id": other["stages"][0]["id"]}, "stage_id", "belongs to pipeline"),
        ({"contact_id": None}, "contact_id", "needs a contact"),
        ({"value": -1}, "value", "negative"),
        ({"currency": "EURO"}, "currency", "ISO 4217"),
        ({"contact_id": 99_999}, "contact_id", "does not exist"),
        ({"pipeline_id": 99_999}, "pipeline_id", "does not exist"),
        ({"title": " "}, "title", "title"),
        ({"status": "maybe"}, "status", "open"),
        ({"lost_reason": "x"}, "lost_reason", "lost"),
        ({"closed_at": "2026-01-01T00:00:00"}, "closed_at", "timezone"),
        ({"owner_id": 2**63}, "owner_id", "less than or equal"),
        ({"colour": "red"}, "colour", "Extra inputs"),
    ]
    for change, field, words in cases:
        body = {**base, **change}
        error = problem(crm.client.post("/api/v1/deals", json=body), 422)
        assert any(e["field"] == field for e in error["errors"]), (change, error)
        assert words.lower() in error["detail"].lower(), (change, error)
    ok(crm.client.post("/api/v1/users/2/deactivate"))
    error = problem(crm.client.post("/api/v1/deals", json={**base, "owner_id": 2}), 422)
    assert error["errors"] == [
        {"field": "owner_id", "message": "user 2 (bob@example.com) is deactivated"}
    ]
    # several problems at once, nothing written
    error = problem(
        crm.client.post("/api/v1/deals", json={**base, "value": -5, "currency": "XXX"}), 422
    )
    assert {e["field"] for e in error["errors"]} == {"value", "currency"}
    assert ok(crm.client.get("/api/v1/deals"))["items"] == []
    problem(crm.client.get("/api/v1/deals/99999999999999999999"), 422)
    problem(crm.client.get("/api/v1/deals/12"), 404)
    problem(crm.client.get("/api/v1/deals", params={"cursor": "nope"}), 422)
    problem(crm.client.get("/api/v1/deals", params={"updated_since": "2026-01-01"}), 422)


def test_a_deactivated_owner_may_keep_a_deal(crm: Crm) -> None:
    deal = crm.deal(owner_id=crm.users[1])
    ok(crm.client.post(f"/api/v1/users/{crm.users[1]}/deactivate"))
    after = ok(crm.client.patch(f"/api/v1/deals/{deal['id']}", json={"value": 7}))
    assert after["owner_id"] == crm.users[1]


def test_custom_deal_fields_reuse_the_contact_field_types(crm: Crm) -> None:
    ok(crm.client.post("/api/v1/deal-fields", json={"key": "seats", "type": "number"}), 201)
    ok(
        crm.client.post(
            "/api/v1/deal-fields",
            json={"key": "plan", "type": "single_choice", "options": ["pro", "team"]},
        ),
        201,
    )
    problem(crm.client.post("/api/v1/deal-fields", json={"key": "value", "type": "text"}), 422)
    problem(crm.client.post("/api/v1/deal-fields", json={"key": "seats", "type": "text"}), 409)
    problem(crm.client.post("/api/v1/deal-fields", json={"key": "x", "type": "single_choice"}), 422)
    deal = crm.deal(fields={"seats": "25", "plan": "pro"})
    assert deal["fields"] == {"seats": 25, "plan": "pro"}
    error = problem(
        crm.client.patch(f"/api/v1/deals/{deal['id']}", json={"fields": {"plan": "gold", "x": 1}}),
        422,
    )
    assert {e["field"] for e in error["errors"]} == {"fields.plan", "fields.x"}
    after = ok(crm.client.patch(f"/api/v1/deals/{deal['id']}", json={"fields": {"seats": None}}))
    assert after["fields"] == {"plan": "pro"}
    change = next(a for a in crm.timeline(deal["id"]) if a["type"] == "deal_field_changed")
    assert change["data"] == {"field": "seats", "old": 25, "new": None}
