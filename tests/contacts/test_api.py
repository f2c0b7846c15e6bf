"""The contacts REST API, through a real ASGI client, on every backend."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from tidings.contacts.models import ContactTag
from tidings.db.engine import Database

PROBLEM = "application/problem+json"


def _create(client: TestClient, **body: object) -> dict[str, object]:
    response = client.post("/api/v1/contacts", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_requires_api_key(client: TestClient) -> None:
    response = client.get("/api/v1/contacts", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM


def test_create_get_update_delete(client: TestClient) -> None:
    contact = _create(
        client, email="  Ann@Example.COM ", first_name="Ann", tags=["VIP"], lists=["News"]
    )
    assert contact["email"] == "ann@example.com"
    assert contact["status"] == "subscribed"
    assert contact["tags"] == ["VIP"]
    assert [m["list"] for m in contact["lists"]] == ["News"]  # type: ignore[union-attr]
    cid = contact["id"]

    response = client.patch(f"/api/v1/contacts/{cid}", json={"last_name": "Lee"})
    assert response.status_code == 200
    assert response.json()["last_name"] == "Lee"

    duplicate = client.post("/api/v1/contacts", json={"email": "ann@example.com"})
    assert duplicate.status_code == 409
    assert duplicate.headers["content-type"] == PROBLEM

    history = client.get(f"/api/v1/contacts/{cid}/activities").json()["items"]
    types = [a["type"] for a in history]
    assert types[0] == "field_changed"
    assert {"contact_created", "tag_added", "list_subscribed"} <= set(types)
    assert all(a["cause"] == "api" for a in history)

    assert client.delete(f"/api/v1/contacts/{cid}").status_code == 204
    assert client.get(f"/api/v1/contacts/{cid}").status_code == 404
    history = client.get(f"/api/v1/contacts/{cid}/activities").json()["items"]
    assert history[0]["type"] == "contact_deleted"


def test_invalid_email_and_unknown_key_are_problems(client: TestClient) -> None:
    response = client.post("/api/v1/contacts", json={"email": "not-an-address"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert "email" in response.json()["detail"]

    response = client.post("/api/v1/contacts", json={"email": "a@b.org", "colour": "red"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "colour"


def test_custom_field_values_are_typed(client: TestClient) -> None:
    assert client.post("/api/v1/fields", json={"key": "age", "type": "number"}).status_code == 201
    assert (
        client.post(
            "/api/v1/fields",
            json={"key": "plan", "type": "single_choice", "options": ["free", "pro"]},
        ).status_code
        == 201
    )
    bad = client.post("/api/v1/contacts", json={"email": "a@b.org", "fields": {"age": "old"}})
    assert bad.status_code == 422
    assert "fields.age" in bad.json()["detail"]
    bad = client.post("/api/v1/contacts", json={"email": "a@b.org", "fields": {"plan": "gold"}})
    assert "fields.plan" in bad.json()["detail"]
    unknown = client.post("/api/v1/contacts", json={"email": "a@b.org", "fields": {"shoe": 9}})
    assert "unknown custom field 'shoe'" in unknown.json()["detail"]
    ok = _create(client, email="a@b.org", fields={"age": "42", "plan": "pro"})
    assert ok["fields"] == {"age": 42, "plan": "pro"}
    # nothing half-written by the rejected attempts
    assert len(client.get("/api/v1/contacts").json()["items"]) == 1


def test_list_filters_and_cursor_pagination(client: TestClient) -> None:
    for i in range(5):
        _create(client, email=f"p{i}@example.com", tags=["even"] if i % 2 == 0 else [])
    page = client.get("/api/v1/contacts", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    seen = [c["email"] for c in page["items"]]
    while page["next_cursor"]:
        page = client.get(
            "/api/v1/contacts", params={"limit": 2, "cursor": page["next_cursor"]}
        ).json()
        seen += [c["email"] for c in page["items"]]
    assert seen == [f"p{i}@example.com" for i in range(5)]
    tagged = client.get("/api/v1/contacts", params={"tag": "even"}).json()["items"]
    assert [c["email"] for c in tagged] == ["p0@example.com", "p2@example.com", "p4@example.com"]
    by_email = client.get("/api/v1/contacts", params={"email": "P3@EXAMPLE.com"}).json()["items"]
    assert [c["email"] for c in by_email] == ["p3@example.com"]
    assert client.get("/api/v1/contacts", params={"cursor": "garbage!"}).status_code == 422


def test_status_change_rules(client: TestClient) -> None:
    cid = _create(client, email="s@example.com")["id"]
    response = client.post(
        f"/api/v1/contacts/{cid}/status", json={"status": "unsubscribed", "reason": "asked"}
    )
    assert response.json()["status"] == "unsubscribed"

    refused = client.post(f"/api/v1/contacts/{cid}/status", json={"status": "subscribed"})
    assert refused.status_code == 409
    assert "force_resubscribe" in refused.json()["detail"]

    forced = client.post(
        f"/api/v1/contacts/{cid}/status",
        json={"status": "subscribed", "force_resubscribe": True, "reason": "re-opted in by phone"},
    )
    assert forced.status_code == 200 and forced.json()["status"] == "subscribed"
    history = client.get(f"/api/v1/contacts/{cid}/activities").json()["items"]
    assert history[0]["type"] == "status_changed"
    assert history[0]["data"] == {
        "old": "unsubscribed",
        "new": "subscribed",
        "reason": "re-opted in by phone",
        "forced": True,
    }


def test_bulk_upsert_does_not_silently_resubscribe(client: TestClient) -> None:
    for status in ("unsubscribed", "bounced", "complained"):
        _create(client, email=f"{status}@example.com", status=status)
    body = {
        "contacts": [
            {"email": f"{s}@example.com", "status": "subscribed"}
            for s in ("unsubscribed", "bounced", "complained")
        ]
        + [{"email": "bad"}]
    }
    result = client.post("/api/v1/contacts/bulk", json=body).json()
    assert result["updated"] == 0 and result["unchanged"] == 3
    assert len(result["kept_status"]) == 3
    assert result["rejected"][0]["index"] == 3
    statuses = {c["email"]: c["status"] for c in client.get("/api/v1/contacts").json()["items"]}
    assert statuses["bounced@example.com"] == "bounced"

    body = {**body, "force_resubscribe": True, "reason": "confirmed opt-in"}
    result = client.post("/api/v1/contacts/bulk", json=body).json()
    assert result["updated"] == 3
    statuses = {c["email"]: c["status"] for c in client.get("/api/v1/contacts").json()["items"]}
    assert set(statuses.values()) == {"subscribed"}


def test_tags_lists_and_suppressions(client: TestClient) -> None:
    cid = _create(client, email="t@example.com")["id"]
    assert client.put(f"/api/v1/contacts/{cid}/tags/Hot").json()["tags"] == ["Hot"]
    assert client.delete(f"/api/v1/contacts/{cid}/tags/Hot").json()["tags"] == []
    list_id = client.post("/api/v1/lists", json={"name": "Weekly"}).json()["id"]
    lists = client.put(f"/api/v1/contacts/{cid}/lists/{list_id}").json()["lists"]
    assert lists[0]["status"] == "active"
    lists = client.delete(f"/api/v1/contacts/{cid}/lists/{list_id}").json()["lists"]
    assert lists[0]["status"] == "unsubscribed"
    assert client.put(f"/api/v1/contacts/{cid}/lists/{list_id}").status_code == 409
    again = client.put(f"/api/v1/contacts/{cid}/lists/{list_id}", json={"force_resubscribe": True})
    assert again.json()["lists"][0]["status"] == "active"

    assert (
        client.post("/api/v1/suppressions", json={"value": "@Spam.Example"}).json()["value"]
        == "@spam.example"
    )
    assert client.post("/api/v1/suppressions", json={"value": "@"}).status_code == 422
    assert len(client.get("/api/v1/suppressions").json()) == 1


def test_bulk_upsert_refuses_more_than_10000(client: TestClient) -> None:
    body = {"contacts": [{"email": f"x{i}@example.com"} for i in range(10_001)]}
    response = client.post("/api/v1/contacts/bulk", json=body)
    assert response.status_code == 422
    assert "contacts" in response.json()["detail"]
    assert client.get("/api/v1/contacts").json()["items"] == []


def test_force_resubscribe_needs_a_reason(client: TestClient) -> None:
    body = {"contacts": [{"email": "a@example.com"}], "force_resubscribe": True}
    response = client.post("/api/v1/contacts/bulk", json=body)
    assert response.status_code == 422 and "reason" in response.json()["detail"]


def test_deleting_a_contact_or_a_tag_takes_the_tag_off(
    client: TestClient, database: Database
) -> None:
    """contact_tags has no foreign keys: the deletes themselves remove its rows."""
    ann = _create(client, email="ann@example.org", tags=["VIP", "Hot"])
    bob = _create(client, email="bob@example.org", tags=["VIP", "Hot"])
    tags = {t["name"]: t["id"] for t in client.get("/api/v1/tags").json()}

    def tag_rows() -> set[tuple[int, int]]:
        with database.session() as session:
            return set(session.execute(select(ContactTag.contact_id, ContactTag.tag_id)).all())

    assert client.delete(f"/api/v1/contacts/{ann['id']}").status_code == 204
    assert tag_rows() == {(bob["id"], tags["VIP"]), (bob["id"], tags["Hot"])}
    assert client.delete(f"/api/v1/tags/{tags['Hot']}").status_code == 204
    assert tag_rows() == {(bob["id"], tags["VIP"])}
    assert client.get(f"/api/v1/contacts/{bob['id']}").json()["tags"] == ["VIP"]
