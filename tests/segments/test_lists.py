"""List management by segment: set-based, with activities, never re-adding contacts who left."""

from __future__ import annotations

from fastapi.testclient import TestClient


def _contact(client: TestClient, email: str, **body: object) -> int:
    response = client.post("/api/v1/contacts", json={"email": email, **body})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_add_and_remove_a_segment(client: TestClient) -> None:
    vip = [_contact(client, f"vip{i}@example.com", tags=["VIP"]) for i in range(3)]
    _contact(client, "plain@example.com")
    list_id = client.post("/api/v1/lists", json={"name": "Gold"}).json()["id"]
    # vip0 was on the list once and left: it must not be put back by a segment.
    client.put(f"/api/v1/contacts/{vip[0]}/lists/{list_id}")
    client.delete(f"/api/v1/contacts/{vip[0]}/lists/{list_id}")
    client.post("/api/v1/segments", json={"name": "VIPs", "condition": {"has_tag": "VIP"}})

    added = client.post(f"/api/v1/lists/{list_id}/segment", json={"segment": "VIPs"})
    assert added.status_code == 200, added.text
    assert added.json() == {"list_id": list_id, "action": "add", "changed": 2}
    again = client.post(f"/api/v1/lists/{list_id}/segment", json={"segment": {"has_tag": "VIP"}})
    assert again.json()["changed"] == 0

    members = client.get(
        "/api/v1/contacts", params={"list": list_id, "list_status": "active"}
    ).json()
    assert sorted(c["id"] for c in members["items"]) == vip[1:]
    history = client.get(f"/api/v1/contacts/{vip[1]}/activities").json()["items"]
    assert history[0]["type"] == "list_subscribed" and history[0]["data"]["list"] == "Gold"

    removed = client.post(
        f"/api/v1/lists/{list_id}/segment", json={"segment": {"has_tag": "VIP"}, "action": "remove"}
    )
    assert removed.json()["changed"] == 2
    history = client.get(f"/api/v1/contacts/{vip[2]}/activities").json()["items"]
    assert history[0]["type"] == "list_unsubscribed"


def test_bad_segment_and_unknown_list_are_problems(client: TestClient) -> None:
    list_id = client.post("/api/v1/lists", json={"name": "Any"}).json()["id"]
    bad = client.post(f"/api/v1/lists/{list_id}/segment", json={"segment": {"has_tag": 5}})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    missing = client.post("/api/v1/lists/999/segment", json={"segment": {"has_tag": "x"}})
    assert missing.status_code == 404
    unknown = client.post(f"/api/v1/lists/{list_id}/segment", json={"segment": "No such"})
    assert unknown.status_code == 404
