"""Inputs every route refuses the same way on both databases (issue 13): text holding a NUL
character (PostgreSQL refuses it, SQLite stored it) and ids beyond 64 bits."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tidings.inputs import NUL_MESSAGE

NUL = "\u0000"
PROBLEM = "application/problem+json"
HUGE = 2**64
DEFINITION = {"name": "Welcome", "steps": [{"id": "tag", "action": "add_tag", "tag": "New"}]}

# (method, path, body or None, the field the 422 names); {cid} is an existing contact.
CASES: list[tuple[str, str, Any, str]] = [
    ("POST", "/api/v1/contacts", {"email": f"a{NUL}@example.com"}, "email"),
    ("POST", "/api/v1/contacts", {"email": "b@example.com", "first_name": NUL}, "first_name"),
    ("POST", "/api/v1/contacts", {"email": "c@example.com", "tags": ["ok", NUL]}, "tags[1]"),
    ("POST", "/api/v1/contacts", {"email": "d@example.com", "lists": [NUL]}, "lists[0]"),
    (
        "POST",
        "/api/v1/contacts",
        {"email": "e@example.com", "fields": {"plan": NUL}},
        "fields.plan",
    ),
    ("PATCH", "/api/v1/contacts/{cid}", {"fields": {"plan": ["x", NUL]}}, "fields.plan[1]"),
    ("PATCH", "/api/v1/contacts/{cid}", {"last_name": f"x{NUL}"}, "last_name"),
    ("PUT", "/api/v1/contacts/{cid}/tags/a%00b", None, "tag"),
    ("DELETE", "/api/v1/contacts/{cid}/tags/a%00b", None, "tag"),
    ("POST", "/api/v1/contacts/{cid}/status", {"status": "unsubscribed", "reason": NUL}, "reason"),
    ("GET", "/api/v1/contacts?tag=a%00b", None, "tag"),
    ("GET", "/api/v1/contacts?email=a%00@example.com", None, "email"),
    ("POST", "/api/v1/tags", {"name": f"t{NUL}"}, "name"),
    ("POST", "/api/v1/lists", {"name": "L", "description": NUL}, "description"),
    ("POST", "/api/v1/fields", {"key": "tier", "type": "text", "label": NUL}, "label"),
    ("POST", "/api/v1/suppressions", {"value": f"x{NUL}@example.com"}, "value"),
    ("POST", "/api/v1/events", {"type": "site_visit", "contact_id": 1, "url": NUL}, "url"),
    (
        "POST",
        "/api/v1/events",
        {"type": "custom", "name": "x", "contact_id": 1, "properties": {"a": [{"b": NUL}]}},
        "properties.a[0].b",
    ),
    ("POST", "/api/v1/segments/preview", {"condition": {"has_tag": NUL}}, "condition.has_tag"),
    (
        "POST",
        "/api/v1/segments",
        {"name": "S", "condition": {"field": "first_name", "op": "in", "value": ["a", NUL]}},
        "condition.value[1]",
    ),
    ("POST", "/api/v1/templates", {"name": "T", "subject": NUL, "html": "<p>"}, "subject"),
    (
        "POST",
        "/api/v1/templates",
        {"name": "T", "subject": "s", "html": "<p>", "variables": {NUL: 1}},
        "variables.\\u0000",
    ),
    (
        "POST",
        "/api/v1/automations",
        {"definition": {**DEFINITION, "steps": [{"id": "t", "action": "add_tag", "tag": NUL}]}},
        "definition.steps[0].tag",
    ),
    ("POST", "/api/v1/automations", {"yaml": f"name: W{NUL}"}, "yaml"),
    ("POST", "/api/v1/opt-ins", {"email": f"z{NUL}@example.com", "list_id": 1}, "email"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), CASES)
def test_nul_characters_are_refused_naming_the_field(
    client: TestClient, method: str, path: str, body: Any, field: str
) -> None:
    cid = client.post("/api/v1/contacts", json={"email": "ann@example.com"}).json()["id"]
    assert client.post("/api/v1/fields", json={"key": "plan", "type": "text"}).status_code == 201
    response = client.request(method, path.format(cid=cid), json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert {"field": field, "message": NUL_MESSAGE} in problem["errors"], problem
    assert field in problem["detail"]
    # Nothing was half-written, and the database still answers.
    assert client.get(f"/api/v1/contacts/{cid}").json()["tags"] == []
    assert client.get("/api/v1/tags").json() == []


def test_bulk_rejects_the_row_with_a_nul_and_writes_the_rest(client: TestClient) -> None:
    rows = [{"email": f"u{i}@example.com", "first_name": f"U{i}"} for i in range(5)]
    rows[2]["first_name"] = f"bad{NUL}"
    rows[4]["tags"] = ["ok", NUL]  # type: ignore[assignment]
    response = client.post("/api/v1/contacts/bulk", json={"contacts": rows})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["created"] == 3
    assert [(r["index"], r["reason"]) for r in report["rejected"]] == [
        (2, f"first_name: {NUL_MESSAGE}"),
        (4, f"tags[1]: {NUL_MESSAGE}"),
    ]
    emails = {c["email"] for c in client.get("/api/v1/contacts").json()["items"]}
    assert emails == {"u0@example.com", "u1@example.com", "u3@example.com"}


def test_a_batch_of_events_rejects_the_one_with_a_nul(client: TestClient) -> None:
    cid = client.post("/api/v1/contacts", json={"email": "ann@example.com"}).json()["id"]
    events = [
        {"type": "site_visit", "contact_id": cid, "url": "https://shop.test/a"},
        {"type": "site_visit", "contact_id": cid, "url": f"https://shop.test/{NUL}"},
        {"type": "purchase", "contact_id": cid, "amount": 5, "order_id": f"o{NUL}"},
        {"type": "custom", "name": "x", "contact_id": cid, "event_id": f"e{NUL}"},
        {"type": "custom", "name": "x", "email": f"ann{NUL}@example.com"},
        {"type": "email_opened", "contact_id": cid, "message_id": f"m{NUL}"},
        {"type": "custom", "name": "x", "contact_id": cid, "properties": {f"k{NUL}": 1}},
    ]
    report = client.post("/api/v1/events/batch", json=events).json()
    assert report["stored"] == 1
    assert [(r["index"], r["reason"].split(":")[0]) for r in report["rejected"]] == [
        (1, "url"),
        (2, "order_id"),
        (3, "event_id"),
        (4, "email"),
        (5, "message_id"),
        (6, "properties.k\\u0000"),
    ]


def _id_parameters(app: FastAPI) -> list[tuple[str, str, str, str]]:
    """(method, path, parameter, where) of every integer parameter in the OpenAPI document."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                types = {schema.get("type"), *(s.get("type") for s in schema.get("anyOf", []))}
                if "integer" in types and parameter["name"] != "limit":
                    found.append((method.upper(), path, parameter["name"], parameter["in"]))
    return found


def test_ids_beyond_64_bits_are_422_on_every_route(client: TestClient, app: FastAPI) -> None:
    """Every integer path and query parameter: 404/422, never a server error."""
    parameters = _id_parameters(app)
    assert len(parameters) > 35
    failures = []
    for method, path, name, where in parameters:
        url = re.sub(r"{(\w+)}", lambda m, name=name: str(HUGE) if m[1] == name else "1", path)
        query = {name: str(HUGE)} if where == "query" else {}
        response = client.request(method, url, params=query, json={})
        if response.status_code not in (404, 422):
            failures.append((method, path, name, response.status_code))
    assert failures == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/messages/transactional", {"template": "t", "contact_id": HUGE}),
        ("/api/v1/broadcasts", {"name": "b", "template_id": HUGE, "list_id": 1}),
        ("/api/v1/broadcasts", {"name": "b", "template_id": 1, "list_id": HUGE}),
        ("/api/v1/opt-ins", {"email": "a@example.com", "list_id": HUGE}),
        ("/api/v1/automations/1/enrol", {"contact_ids": [1, HUGE]}),
    ],
)
def test_ids_beyond_64_bits_in_bodies_are_422(client: TestClient, path: str, body: Any) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text


def test_cursors_beyond_64_bits_or_without_timezone_are_422(client: TestClient) -> None:
    import base64

    def cursor(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    cid = client.post("/api/v1/contacts", json={"email": "ann@example.com"}).json()["id"]
    assert (
        client.get("/api/v1/contacts", params={"cursor": cursor(f"id:{HUGE}")}).status_code == 422
    )
    timeline = f"/api/v1/contacts/{cid}/timeline"
    for text in (f"t:2026-03-01T00:00:00+00:00|{HUGE}", "t:2026-03-01T00:00:00|5"):
        assert client.get(timeline, params={"cursor": cursor(text)}).status_code == 422
