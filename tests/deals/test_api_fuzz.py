"""Whatever JSON arrives, the deals API answers with a problem, never a 500."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.deals.helpers import Crm, ok
from tests.strategies import json_values

ids = st.one_of(st.integers(min_value=-3, max_value=6), st.integers(), json_values)
deal_like = st.fixed_dictionaries(
    {},
    optional={
        "title": st.text(max_size=20) | json_values,
        "value": st.integers() | json_values,
        "currency": st.sampled_from(["EUR", "usd", "XXX", ""]) | json_values,
        "contact_id": ids,
        "contact_ids": st.lists(ids, max_size=3) | json_values,
        "owner_id": ids,
        "pipeline_id": ids,
        "stage_id": ids,
        "status": st.sampled_from(["open", "won", "lost", "x"]) | json_values,
        "lost_reason": json_values,
        "closed_at": st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00", "x"]),
        "expected_close": st.sampled_from(["2026-05-01", "2026-13-01", ""]) | json_values,
        "fields": st.dictionaries(st.sampled_from(["seats", "x"]), json_values, max_size=2),
        "position": st.integers() | json_values,
    },
)
rule_like = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=10), "points": st.integers() | json_values},
    optional={
        "condition": st.fixed_dictionaries(
            {
                "deal": st.fixed_dictionaries(
                    {
                        "field": st.sampled_from(
                            ["value", "stage", "seats", "expected_close", "x"]
                        ),
                        "op": st.sampled_from(["eq", "gte", "before", "contains", "in"]),
                        "value": json_values,
                    }
                )
            }
        )
        | json_values,
        "expires_after_days": st.integers() | json_values,
    },
)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def _problem_or_ok(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


def test_create_and_patch_never_fail_with_500(crm: Crm) -> None:
    ok(crm.client.post("/api/v1/deal-fields", json={"key": "seats", "type": "number"}), 201)
    deal = crm.deal()

    @FUZZ
    @given(body=deal_like | json_values)
    def check(body: Any) -> None:
        _problem_or_ok(crm.client.post("/api/v1/deals", json=body))
        _problem_or_ok(crm.client.patch(f"/api/v1/deals/{deal['id']}", json=body))

    check()


def test_rules_and_moves_never_fail_with_500(crm: Crm) -> None:
    crm.deal()

    @FUZZ
    @given(
        rule=rule_like | json_values,
        move=st.fixed_dictionaries(
            {"deal_ids": st.lists(ids, max_size=3) | json_values, "stage_id": ids}
        ),
    )
    def check(rule: Any, move: Any) -> None:
        _problem_or_ok(crm.client.post("/api/v1/deal-scoring-rules", json=rule))
        _problem_or_ok(crm.client.post("/api/v1/deals/bulk/move", json=move))

    check()


email_like = st.fixed_dictionaries(
    {},
    optional={
        "subject": st.text(max_size=20) | json_values,
        "body": st.text(max_size=40) | json_values,
        "to": st.sampled_from(["c0@example.com", "C1@EXAMPLE.COM", "c2@example.com", "x", ""])
        | json_values,
        "automation_id": ids,
        "automate_on": st.sampled_from(["sent", "replied", "never"]) | json_values,
    },
)


def test_deal_emails_never_fail_with_500(crm: Crm) -> None:
    deal = crm.deal(owner_id=crm.users[0], contact_ids=[crm.contacts[1]])

    @FUZZ
    @given(body=email_like | json_values)
    def check(body: Any) -> None:
        _problem_or_ok(crm.client.post(f"/api/v1/deals/{deal['id']}/emails", json=body))

    check()
