"""Whatever JSON arrives, the events and segments endpoints answer a problem, never a 500."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import json_values
from tidings.segments.conditions import KINDS

event_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["email_opened", "link_clicked", "purchase", "custom", "site_visit", "x"]
        )
        | json_values
    },
    optional={
        "contact_id": st.integers() | json_values,
        "email": st.emails() | json_values,
        "occurred_at": st.datetimes().map(lambda d: d.isoformat()) | json_values,
        "url": st.text(max_size=20) | json_values,
        "amount": st.floats(allow_nan=False, allow_infinity=False) | json_values,
        "name": json_values,
        "event_id": json_values,
        "properties": json_values,
        "machine": json_values,
    },
)
conditions = st.recursive(
    st.dictionaries(st.sampled_from(KINDS), json_values, min_size=1, max_size=2)
    | st.fixed_dictionaries(
        {
            "field": json_values,
            "op": st.sampled_from(["eq", "gt", "contains", "includes", "within_days", "x"]),
            "value": json_values,
        }
    )
    | st.fixed_dictionaries(
        {
            "event": st.fixed_dictionaries(
                {"type": json_values},
                optional={
                    "within_days": json_values,
                    "at_least": json_values,
                    "where": json_values,
                    "since": json_values,
                },
            )
        }
    ),
    lambda inner: (
        st.dictionaries(
            st.sampled_from(["and", "or"]), st.lists(inner, max_size=3), min_size=1, max_size=1
        )
        | inner.map(lambda c: {"not": c})
    ),
    max_leaves=6,
)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(events=st.lists(event_like | json_values, max_size=5))
def test_event_batches_never_500(client: TestClient, events: list[Any]) -> None:
    response = client.post("/api/v1/events/batch?create_contacts=true", json=events)
    assert response.status_code in (200, 422), response.text
    single = client.post("/api/v1/events", json=events[0] if events else {})
    assert single.status_code in (201, 422), single.text


@FUZZ
@given(condition=conditions | json_values)
def test_segment_preview_never_500(client: TestClient, condition: Any) -> None:
    response = client.post("/api/v1/segments/preview", json={"condition": condition})
    assert response.status_code in (200, 422), (condition, response.text)
