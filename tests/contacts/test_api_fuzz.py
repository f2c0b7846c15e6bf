"""Whatever JSON arrives, the contacts API answers with a problem, never a 500."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import json_values

contact_like = st.fixed_dictionaries(
    {"email": st.one_of(st.emails(), st.text(max_size=40), st.integers())},
    optional={
        "first_name": json_values,
        "status": st.sampled_from(["subscribed", "bounced", "nope", 3]),
        "fields": st.dictionaries(st.sampled_from(["age", "plan", "x"]), json_values, max_size=3),
        "tags": st.lists(st.text(max_size=8), max_size=3) | json_values,
        "lists": json_values,
    },
)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def _prepare(client: TestClient) -> None:
    client.post("/api/v1/fields", json={"key": "age", "type": "number"})
    client.post(
        "/api/v1/fields", json={"key": "plan", "type": "single_choice", "options": ["a", "b"]}
    )


def test_create_never_fails_with_500(client: TestClient) -> None:
    _prepare(client)

    @FUZZ
    @given(body=contact_like | json_values)
    def check(body: Any) -> None:
        response = client.post("/api/v1/contacts", json=body)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"

    check()


def test_bulk_never_fails_with_500(client: TestClient) -> None:
    _prepare(client)

    @FUZZ
    @given(contacts=st.lists(contact_like, max_size=6))
    def check(contacts: list[Any]) -> None:
        response = client.post("/api/v1/contacts/bulk", json={"contacts": contacts})
        assert response.status_code < 500, response.text

    check()
