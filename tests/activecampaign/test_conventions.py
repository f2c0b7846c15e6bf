"""/api/3 conventions over ASGI, on SQLite and PostgreSQL: envelopes and string ids, meta
totals, limit/offset, filters[...] and orders[...], ActiveCampaign's error shapes with
pointers, Content-Type on every answer, and the same data as /api/v1."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tidings.automations.engine import Engine
from tidings.automations.service import create_automation
from tidings.clock import FakeClock
from tidings.db.engine import Database


def _contacts(ac: TestClient, count: int) -> list[str]:
    ids = []
    for index in range(count):
        answer = ac.post(
            "/contacts",
            json={"contact": {"email": f"p{index}@example.com", "firstName": f"N{index:02}"}},
        )
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["contact"]["id"])
    return ids


def test_paging_orders_and_meta(ac: TestClient) -> None:
    ids = _contacts(ac, 25)
    first = ac.get("/contacts").json()
    assert len(first["contacts"]) == 20 and first["meta"]["total"] == "25"  # default limit 20
    assert all(isinstance(c["id"], str) for c in first["contacts"])
    rest = ac.get("/contacts", params={"limit": 20, "offset": 20}).json()["contacts"]
    assert [c["id"] for c in first["contacts"] + rest] == ids
    capped = ac.get("/contacts", params={"limit": 1000}).json()["contacts"]
    assert len(capped) == 25  # at most 100 per page, here all 25
    newest = ac.get("/contacts", params={"orders[first_name]": "DESC", "limit": 2}).json()
    assert [c["firstName"] for c in newest["contacts"]] == ["N24", "N23"]
    searched = ac.get("/contacts", params={"filters[search]": "p1"}).json()["meta"]["total"]
    assert searched == "11"  # p1, p10..p19


def test_filters_by_time_and_unknown_keys(ac: TestClient, clock: FakeClock) -> None:
    _contacts(ac, 2)
    clock.advance(hours=1)
    later = ac.post("/contacts", json={"contact": {"email": "late@example.com"}}).json()["contact"]
    after = ac.get("/contacts", params={"filters[created_after]": "2026-03-02T09:30:00Z"}).json()
    assert [c["id"] for c in after["contacts"]] == [later["id"]]
    answer = ac.get("/contacts", params={"filters[colour]": "red"})
    assert answer.status_code == 422
    (error,) = answer.json()["errors"]
    assert error["source"]["pointer"] == "/parameters/filters[colour]"
    assert {"title", "detail", "code", "source"} <= set(error)
    bad_order = ac.get("/contacts", params={"orders[email]": "SIDEWAYS"})
    assert bad_order.status_code == 422
    bad_time = ac.get("/contacts", params={"filters[updated_after]": "yesterday"})
    assert bad_time.status_code == 422 and bad_time.headers["content-type"] == "application/json"


def test_errors_have_activecampaigns_shape(ac: TestClient) -> None:
    missing = ac.post("/contacts", json={"contact": {"firstName": "x"}})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["source"]["pointer"] == "/data/attributes/email"
    invalid = ac.post("/contacts", json={"contact": {"email": "not-an-address"}})
    assert invalid.json()["errors"][0]["source"]["pointer"] == "/data/attributes/email"
    wrong_type = ac.post("/deals", json={"deal": {"title": "x", "value": "lots"}})
    assert wrong_type.json()["errors"][0]["source"]["pointer"] == "/data/attributes/value"
    nul = ac.post("/contacts", json={"contact": {"email": "a\u0000@example.com"}})
    assert nul.status_code == 422
    not_json = ac.post("/contacts", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and "errors" in not_json.json()
    gone = ac.get("/contacts/424242")
    assert gone.status_code == 404
    assert gone.json() == {"message": "No Result found for Subscriber with id 424242"}
    unsupported = ac.get("/ecomOrders")
    assert unsupported.status_code == 404 and unsupported.json()["title"] == "Not supported"
    assert unsupported.headers["content-type"] == "application/json"
    forbidden = ac.get("/contacts", headers={"Api-Token": "nope"})
    assert forbidden.status_code == 403 and forbidden.headers["content-type"] == "application/json"
    assert ac.get("/contacts", headers={"Api-Token": ""}).status_code == 403


def test_deletes_answer_an_empty_object_and_creates_their_status(ac: TestClient) -> None:
    made = ac.post("/tags", json={"tag": {"tag": "x"}})
    assert made.status_code == 201
    deleted = ac.delete(f"/tags/{made.json()['tag']['id']}")
    assert (deleted.status_code, deleted.json()) == (200, {})
    contact = ac.post("/contact/sync", json={"contact": {"email": "s@example.com"}})
    assert contact.status_code == 201
    again = ac.post("/contact/sync", json={"contact": {"email": "s@example.com", "firstName": "S"}})
    assert again.status_code == 200 and again.json()["contact"]["firstName"] == "S"


def test_the_same_data_through_both_apis(ac: TestClient, client: TestClient) -> None:
    native = client.post("/api/v1/contacts", json={"email": "n@example.com", "tags": ["a"]}).json()
    through_ac = ac.get(f"/contacts/{native['id']}").json()
    assert through_ac["contact"]["email"] == "n@example.com"
    assert [t["tag"] for t in through_ac["contactTags"]] == [
        ac.get("/tags").json()["tags"][0]["id"]
    ]
    made = ac.post(
        "/contacts", json={"contact": {"email": "m@example.com", "firstName": "Mo", "phone": "1"}}
    ).json()["contact"]
    read = client.get(f"/api/v1/contacts/{made['id']}").json()
    assert (read["email"], read["first_name"], read["phone"]) == ("m@example.com", "Mo", "1")
    ac.post("/contactTags", json={"contactTag": {"contact": made["id"], "tag": "from-ac"}})
    assert client.get(f"/api/v1/contacts/{made['id']}").json()["tags"] == ["from-ac"]
    history = client.get(f"/api/v1/contacts/{made['id']}/activities").json()["items"]
    assert [(a["type"], a["cause"]) for a in history][:2] == [
        ("tag_added", "api"),
        ("contact_created", "api"),
    ]


def test_a_tag_added_through_api3_starts_a_tag_triggered_automation(
    ac: TestClient, database: Database, clock: FakeClock
) -> None:
    with database.session() as session:
        automation = create_automation(
            session,
            {
                "name": "On VIP",
                "trigger": {"type": "tag_added", "tag": "vip"},
                "steps": [{"id": "mark", "action": "add_tag", "tag": "welcomed"}],
            },
            now=clock.now(),
        )
    contact = ac.post("/contacts", json={"contact": {"email": "v@example.com"}}).json()["contact"]
    answer = ac.post("/contactTags", json={"contactTag": {"contact": contact["id"], "tag": "vip"}})
    assert answer.status_code == 201
    Engine(database, clock).run_until_idle()
    runs = ac.get(f"/contacts/{contact['id']}/contactAutomations").json()["contactAutomations"]
    assert [r["automation"] for r in runs] == [str(automation.id)]
    assert runs[0]["completed"] == 1
    tags = {
        t["tag"] for t in ac.get(f"/contacts/{contact['id']}/contactTags").json()["contactTags"]
    }
    assert len(tags) == 2  # vip, and the automation's "welcomed"


def test_an_unsubscribed_contact_is_not_resubscribed_silently(
    ac: TestClient, client: TestClient
) -> None:
    contact = ac.post("/contacts", json={"contact": {"email": "u@example.com"}}).json()["contact"]
    mailing_list = ac.post("/lists", json={"list": {"name": "L"}}).json()["list"]
    body = {"contactList": {"contact": contact["id"], "list": mailing_list["id"], "status": 1}}
    assert ac.post("/contactLists", json=body).status_code == 200
    body["contactList"]["status"] = 2
    assert ac.post("/contactLists", json=body).json()["contactList"]["status"] == "2"
    body["contactList"]["status"] = 1
    refused = ac.post("/contactLists", json=body)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["source"]["pointer"] == "/data/attributes/status"
    lists = client.get(f"/api/v1/contacts/{contact['id']}").json()["lists"]
    assert [entry["status"] for entry in lists] == ["unsubscribed"]


def test_deal_filters_and_stage_moves(ac: TestClient) -> None:
    contact = ac.post("/contacts", json={"contact": {"email": "d@example.com"}}).json()["contact"]
    group = ac.post("/dealGroups", json={"dealGroup": {"title": "G", "currency": "usd"}}).json()
    first, second, _ = (s["id"] for s in group["dealStages"])
    for index in range(3):
        ac.post(
            "/deals",
            json={
                "deal": {
                    "title": f"D{index}",
                    "contact": contact["id"],
                    "stage": first,
                    "value": index * 100,
                }
            },
        )
    assert ac.get("/deals", params={"filters[stage]": first}).json()["meta"]["total"] == "3"
    ordered = ac.get("/deals", params={"orders[value]": "DESC"}).json()["deals"]
    assert [d["value"] for d in ordered] == ["200", "100", "0"]
    moved = ac.put(f"/dealStages/{first}/deals", json={"deals": {"stage": second}})
    assert moved.status_code == 200
    assert ac.get("/deals", params={"filters[stage]": second}).json()["meta"]["total"] == "3"
    assert ac.get("/deals", params={"filters[status]": "7"}).status_code == 422
    stage = ac.post(
        "/dealStages",
        json={"dealStage": {"title": "New", "group": group["dealGroup"]["id"], "color": "ff0000"}},
    )
    assert stage.status_code == 201 and stage.json()["dealStage"]["color"] == "FF0000"
    one = ac.get(f"/dealGroups/{group['dealGroup']['id']}").json()
    assert len(one["dealStages"]) == 4 and len(one["dealGroup"]["stages"]) == 4


def test_contact_notes_and_field_value_filters(ac: TestClient) -> None:
    contact = ac.post("/contacts", json={"contact": {"email": "o@example.com"}}).json()["contact"]
    note = ac.post(
        "/notes", json={"note": {"note": "hello", "relid": contact["id"], "reltype": "Subscriber"}}
    )
    assert note.status_code == 201
    notes = ac.get(f"/contacts/{contact['id']}/notes").json()
    assert [n["note"] for n in notes["notes"]] == ["hello"] and notes["meta"]["total"] == "1"
    huge = ac.get("/fieldValues", params={"filters[contactid]": str(2**70)})
    assert huge.status_code == 422
    assert ac.get("/deals", params={"filters[minimum_value]": str(2**62)}).status_code == 422
