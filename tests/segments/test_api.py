"""Segment preview and saved segments over the REST API."""

from __future__ import annotations

from fastapi.testclient import TestClient


def _seed(client: TestClient) -> list[int]:
    ids = []
    for email, tags in (("a@example.com", ["VIP"]), ("b@example.com", []), ("c@example.com", [])):
        response = client.post("/api/v1/contacts", json={"email": email, "tags": tags})
        ids.append(response.json()["id"])
    client.post(
        "/api/v1/events/batch",
        json=[
            {"type": "email_opened", "contact_id": ids[1]},
            {"type": "link_clicked", "contact_id": ids[2], "url": "https://x.test"},
            {"type": "email_opened", "contact_id": ids[0]},
        ],
    )
    return ids


ENGAGED_NOT_VIP = {
    "and": [
        {"event": {"type": ["email_opened", "link_clicked"], "within_days": 7}},
        {"lacks_tag": "VIP"},
        {"status": "subscribed"},
    ]
}


def test_preview_counts_and_pages(client: TestClient) -> None:
    ids = _seed(client)
    body = client.post(
        "/api/v1/segments/preview", json={"condition": ENGAGED_NOT_VIP, "limit": 1}
    ).json()
    assert body["count"] == 2
    assert [c["id"] for c in body["items"]] == [ids[1]] and body["next_cursor"]


def test_preview_errors_name_the_path(client: TestClient) -> None:
    response = client.post(
        "/api/v1/segments/preview",
        json={
            "condition": {
                "and": [
                    {"has_tag": "A"},
                    {"has_tag": "B"},
                    {"event": {"type": "email_opened", "within_days": 0}},
                ]
            }
        },
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "and[2].event.within_days: must be > 0"
    response = client.post(
        "/api/v1/segments/preview",
        json={"condition": {"field": "company", "op": "eq", "value": "x"}},
    )
    assert (
        response.status_code == 422
        and response.json()["detail"] == "field: unknown field 'company'"
    )
    client.post("/api/v1/fields", json={"key": "company", "label": "Company", "type": "text"})
    ok = client.post(
        "/api/v1/segments/preview",
        json={"condition": {"field": "company", "op": "eq", "value": "x"}},
    )
    assert ok.status_code == 200 and ok.json()["count"] == 0
    wrong = client.post(
        "/api/v1/segments/preview", json={"condition": {"field": "company", "op": "gt", "value": 3}}
    )
    assert wrong.status_code == 422 and "company" in wrong.json()["detail"]
    nested = {"or": [{"has_tag": "A"}, {"not": {"field": "compnay", "op": "eq", "value": "x"}}]}
    response = client.post("/api/v1/segments/preview", json={"condition": nested})
    assert response.json()["detail"] == "or[1].not.field: unknown field 'compnay'"
    field = {
        "key": "interests",
        "label": "Interests",
        "type": "multi_choice",
        "options": ["golf", "tea"],
    }
    assert client.post("/api/v1/fields", json=field).status_code == 201
    client.post(
        "/api/v1/contacts", json={"email": "g@example.com", "fields": {"interests": ["golf"]}}
    )
    includes = {"field": "interests", "op": "includes", "value": "golf"}
    assert (
        client.post("/api/v1/segments/preview", json={"condition": includes}).json()["count"] == 1
    )
    excludes = {"field": "interests", "op": "excludes", "value": "golf"}
    assert (
        client.post("/api/v1/segments/preview", json={"condition": excludes}).json()["count"] == 0
    )
    eq = {"field": "interests", "op": "eq", "value": "golf"}
    assert client.post("/api/v1/segments/preview", json={"condition": eq}).status_code == 422


def test_a_condition_beyond_a_limit_is_422_naming_it_and_the_path(client: TestClient) -> None:
    filters = [{"property": "url", "op": "contains", "value": "x"}] * 21
    condition = {"or": [{"has_tag": "A"}, {"event": {"type": "email_opened", "where": filters}}]}
    for path, body in (
        ("/api/v1/segments/preview", {"condition": condition}),
        ("/api/v1/segments", {"name": "S", "condition": condition}),
    ):
        response = client.post(path, json=body)
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [
            {
                "field": "or[1].event.where",
                "message": "at most 20 filters (the limit of where filters per event)",
            }
        ]


def test_saved_segments_crud_and_members(client: TestClient) -> None:
    ids = _seed(client)
    created = client.post(
        "/api/v1/segments", json={"name": "engaged", "condition": ENGAGED_NOT_VIP}
    )
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert (
        client.post(
            "/api/v1/segments", json={"name": "engaged", "condition": {"has_tag": "x"}}
        ).status_code
        == 409
    )
    bad = client.post("/api/v1/segments", json={"name": "bad", "condition": {"nope": 1}})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("nope: unknown condition")
    members = client.get(f"/api/v1/segments/{sid}/contacts").json()
    assert [c["id"] for c in members["items"]] == ids[1:]
    replaced = client.put(
        f"/api/v1/segments/{sid}", json={"name": "vips", "condition": {"has_tag": "VIP"}}
    )
    assert replaced.json()["name"] == "vips"
    assert [c["id"] for c in client.get(f"/api/v1/segments/{sid}/contacts").json()["items"]] == ids[
        :1
    ]
    assert [s["name"] for s in client.get("/api/v1/segments").json()] == ["vips"]
    assert client.delete(f"/api/v1/segments/{sid}").status_code == 204
    assert client.get(f"/api/v1/segments/{sid}").status_code == 404
