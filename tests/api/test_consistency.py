"""Issue 13, consistency: the same words and the same error shape everywhere."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tidings.config import Settings


def test_custom_fields_take_name_like_tags_and_lists(client: TestClient) -> None:
    created = client.post("/api/v1/fields", json={"key": "plan", "name": "Plan", "type": "text"})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Plan" and created.json()["label"] == "Plan"
    field_id = created.json()["id"]
    renamed = client.patch(f"/api/v1/fields/{field_id}", json={"name": "Pricing plan"})
    assert renamed.json()["name"] == "Pricing plan"
    # `label`, the name it had before, still works.
    old = client.post("/api/v1/fields", json={"key": "age", "label": "Age", "type": "number"})
    assert old.status_code == 201 and old.json()["name"] == "Age"
    both = client.post(
        "/api/v1/fields", json={"key": "x", "name": "X", "label": "Y", "type": "text"}
    )
    assert both.status_code == 422 and both.json()["errors"]
    deal_field = client.post(
        "/api/v1/deal-fields", json={"key": "region", "name": "Region", "type": "text"}
    )
    assert deal_field.status_code == 201 and deal_field.json()["name"] == "Region"


def test_contacts_filter_by_list_name_or_id(client: TestClient) -> None:
    for email in ("a@example.com", "b@example.com"):
        client.post("/api/v1/contacts", json={"email": email})
    client.post("/api/v1/contacts", json={"email": "c@example.com", "lists": ["Newsletter"]})
    by_name = client.get("/api/v1/contacts", params={"list": "Newsletter"})
    assert by_name.status_code == 200
    assert [c["email"] for c in by_name.json()["items"]] == ["c@example.com"]
    list_id = client.get("/api/v1/lists").json()[0]["id"]
    by_id = client.get("/api/v1/contacts", params={"list": str(list_id)}).json()["items"]
    assert [c["email"] for c in by_id] == ["c@example.com"]
    assert client.get("/api/v1/contacts", params={"list": "Nope"}).json()["items"] == []
    huge = client.get("/api/v1/contacts", params={"list": "9" * 30})
    assert huge.status_code == 200 and huge.json()["items"] == []


def test_an_unknown_list_in_a_segment_is_an_error_naming_it(client: TestClient) -> None:
    response = client.post("/api/v1/segments/preview", json={"condition": {"in_list": "Nope"}})
    assert response.status_code == 422
    problem = response.json()
    assert "Nope" in problem["detail"]
    assert problem["errors"][0]["field"] == "in_list"
    nested = client.post(
        "/api/v1/segments",
        json={"name": "s", "condition": {"and": [{"has_tag": "A"}, {"in_list": 123}]}},
    )
    assert nested.status_code == 422 and nested.json()["errors"][0]["field"] == "and[1].in_list"
    client.post("/api/v1/lists", json={"name": "Real"})
    ok = client.post("/api/v1/segments/preview", json={"condition": {"in_list": "Real"}})
    assert ok.status_code == 200 and ok.json()["count"] == 0


def test_every_422_carries_the_errors_list(client: TestClient) -> None:
    # Raised by services with a detail only: the field is read from it.
    standard = client.post("/api/v1/fields", json={"key": "email", "type": "text"})
    assert standard.status_code == 422
    assert standard.json()["errors"] == [
        {"field": "key", "message": "'email' is a standard contact attribute"}
    ]
    naive = client.post(
        "/api/v1/broadcasts",
        json={"name": "b", "template_id": 1, "segment": {}, "scheduled_at": "2030-01-01T00:00"},
    )
    assert naive.status_code == 422 and naive.json()["errors"]


def test_base_url_follows_host_and_port_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDINGS_BASE_URL", raising=False)
    monkeypatch.setenv("TIDINGS_HOST", "10.0.0.5")
    monkeypatch.setenv("TIDINGS_PORT", "9000")
    assert Settings(_env_file=None).base_url == "http://10.0.0.5:9000"  # type: ignore[call-arg]
    monkeypatch.setenv("TIDINGS_HOST", "0.0.0.0")
    assert Settings(_env_file=None).base_url == "http://127.0.0.1:9000"  # type: ignore[call-arg]
    monkeypatch.setenv("TIDINGS_BASE_URL", "https://mail.example.com")
    assert Settings(_env_file=None).base_url == "https://mail.example.com"  # type: ignore[call-arg]
