"""Deal scoring: rules over the deal's fields and its primary contact, recomputed set-wise,
expiring points, and deal_score_changed only where a score changed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select

from tests.deals.helpers import Crm, ok, problem
from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.deals import scoring

BIG = {"deal": {"field": "value", "op": "gte", "value": 1_000_000}}
OPENED = {"event": {"type": "email_opened", "within_days": 7}}


def rule(crm: Crm, condition: Any, points: int, **more: Any) -> dict[str, Any]:
    body = {"name": f"r{points}{len(str(condition))}", "condition": condition, "points": points}
    return ok(crm.client.post("/api/v1/deal-scoring-rules", json={**body, **more}), 201)  # type: ignore[no-any-return]


def score(crm: Crm, deal_id: int) -> int:
    return ok(crm.client.get(f"/api/v1/deals/{deal_id}"))["score"]  # type: ignore[no-any-return]


def score_changes(crm: Crm, deal_id: int) -> list[dict[str, int]]:
    return [a["data"] for a in crm.timeline(deal_id) if a["type"] == "deal_score_changed"]


def test_a_rule_scores_every_deal_and_writes_only_real_changes(crm: Crm) -> None:
    small = crm.deal(value=100)["id"]
    big = crm.deal(value=2_000_000)["id"]
    made = rule(crm, BIG, 10)
    assert (score(crm, small), score(crm, big)) == (0, 10)
    assert score_changes(crm, big) == [{"old": 0, "new": 10}]
    assert score_changes(crm, small) == []
    explained = ok(crm.client.get(f"/api/v1/deals/{big}/score"))
    assert explained["score"] == 10
    assert [(r["rule_id"], r["points"], r["holds"]) for r in explained["rules"]] == [
        (made["id"], 10, True)
    ]
    # a deal write rescores that deal in the same request
    ok(crm.client.patch(f"/api/v1/deals/{small}", json={"value": 1_000_000}))
    assert score(crm, small) == 10
    ok(crm.client.patch(f"/api/v1/deals/{big}", json={"value": 5}))
    assert score(crm, big) == 0
    assert score_changes(crm, big) == [{"old": 10, "new": 0}, {"old": 0, "new": 10}]
    # a new deal is scored when it is created
    assert crm.deal(value=3_000_000)["score"] == 10


def test_changing_and_deleting_a_rule_moves_the_scores(crm: Crm) -> None:
    big = crm.deal(value=2_000_000)["id"]
    made = rule(crm, BIG, 10)
    rule(crm, {"deal": {"field": "stage", "op": "eq", "value": crm.stages[0]}}, -3)
    assert score(crm, big) == 7
    url = f"/api/v1/deal-scoring-rules/{made['id']}"
    ok(crm.client.patch(url, json={"points": 25}))
    assert score(crm, big) == 22
    ok(crm.client.patch(url, json={"active": False}))
    assert score(crm, big) == -3
    ok(
        crm.client.patch(
            url,
            json={
                "active": True,
                "condition": {"deal": {"field": "title", "op": "contains", "value": "deal"}},
            },
        )
    )
    assert score(crm, big) == 22
    ok(crm.client.patch(f"/api/v1/deals/{big}", json={"stage_id": crm.stages[1]}))
    assert score(crm, big) == 25
    assert crm.client.delete(url).status_code == 204
    assert score(crm, big) == 0
    assert len(ok(crm.client.get("/api/v1/deal-scoring-rules"))) == 1


def test_contact_conditions_ask_about_the_primary_contact(crm: Crm, clock: FakeClock) -> None:
    hers = crm.deal(contact_id=crm.contacts[0])["id"]
    his = crm.deal(contact_id=crm.contacts[1], contact_ids=[crm.contacts[0]])["id"]
    event = {
        "type": "email_opened",
        "contact_id": crm.contacts[0],
        "occurred_at": clock.now().isoformat(),
    }
    ok(crm.client.post("/api/v1/events", json=event), 201)
    rule(crm, OPENED, 5)
    assert (score(crm, hers), score(crm, his)) == (5, 0)
    clock.advance(days=8)
    ok(crm.client.post("/api/v1/deal-scoring-rules/refresh"))
    assert score(crm, hers) == 0
    assert score_changes(crm, hers) == [{"old": 5, "new": 0}, {"old": 0, "new": 5}]
    # or with a deal condition: both must hold for the same deal
    ok(
        crm.client.post("/api/v1/events", json={**event, "occurred_at": clock.now().isoformat()}),
        201,
    )
    rule(crm, {"and": [OPENED, {"deal": {"field": "status", "op": "eq", "value": "won"}}]}, 100)
    ok(crm.client.post("/api/v1/deal-scoring-rules/refresh"))
    assert score(crm, hers) == 5
    ok(crm.client.patch(f"/api/v1/deals/{hers}", json={"status": "won"}))
    assert score(crm, hers) == 105


def test_refresh_scores_for_a_set_of_deals(crm: Crm, database: Database, clock: FakeClock) -> None:
    deals = [crm.deal(contact_id=crm.contacts[i % 2])["id"] for i in range(4)]
    rule(crm, {"has_tag": "VIP"}, 7)
    ok(crm.client.put(f"/api/v1/contacts/{crm.contacts[0]}/tags/VIP"))
    assert [score(crm, d) for d in deals] == [0, 0, 0, 0]  # tags do not rescore by themselves
    with database.session() as session:
        scoring.refresh_scores(session, deals[:1], clock.now())
    assert [score(crm, d) for d in deals] == [7, 0, 0, 0]
    with database.session() as session:
        scoring.refresh_scores(session, deals, clock.now())
    assert [score(crm, d) for d in deals] == [7, 0, 7, 0]
    assert [len(score_changes(crm, d)) for d in deals] == [1, 0, 1, 0]
    with database.session() as session:
        scoring.adjust_scores(session, deals[1:2], -4, now=clock.now(), cause="automation")
    assert score(crm, deals[1]) == -4
    # a refresh keeps direct adjustments: it moves scores by the rules' differences only
    ok(crm.client.post("/api/v1/deal-scoring-rules/refresh"))
    assert [score(crm, d) for d in deals] == [7, -4, 7, 0]


def test_points_expire_and_are_earned_again_only_by_a_new_match(crm: Crm, clock: FakeClock) -> None:
    deal = crm.deal(value=2_000_000)["id"]
    rule(crm, BIG, 10, expires_after_days=30)
    assert score(crm, deal) == 10
    clock.advance(days=29)
    ok(crm.client.post("/api/v1/deal-scoring-rules/refresh"))
    assert score(crm, deal) == 10
    clock.advance(days=2)
    ok(crm.client.post("/api/v1/deal-scoring-rules/refresh"))
    assert score(crm, deal) == 0  # held all along, but its points lasted 30 days
    ok(crm.client.patch(f"/api/v1/deals/{deal}", json={"title": "still big"}))
    assert score(crm, deal) == 0  # the same match: not earned again
    ok(crm.client.patch(f"/api/v1/deals/{deal}", json={"value": 1}))
    ok(crm.client.patch(f"/api/v1/deals/{deal}", json={"value": 2_000_000}))
    assert score(crm, deal) == 10  # a new match
    assert [c["new"] for c in score_changes(crm, deal)] == [10, 0, 10]


def test_a_rule_over_many_deals_takes_the_same_statements_as_over_few(
    crm: Crm, database: Database
) -> None:
    def statements_for(n: int, name: str) -> int:
        for i in range(n):
            crm.deal(value=2_000_000 + i)
        seen: list[str] = []

        def note(_c: object, _cur: object, statement: str, *_a: object) -> None:
            seen.append(statement)

        event.listen(database.engine, "before_cursor_execute", note)
        try:
            ok(
                crm.client.post(
                    "/api/v1/deal-scoring-rules", json={"name": name, "condition": BIG, "points": 1}
                ),
                201,
            )
        finally:
            event.remove(database.engine, "before_cursor_execute", note)
        return len(seen)

    assert statements_for(2, "a") == statements_for(20, "b")
    with database.session() as session:
        changed = session.scalar(
            select(func.count()).select_from(Activity).where(Activity.type == "deal_score_changed")
        )
    assert changed == 2 + 20 + 22  # rule a; the 20 new deals scored by it; rule b


def test_contactless_deals_match_no_contact_condition(crm: Crm) -> None:
    deal = crm.deal(value=2_000_000, contact_id=crm.contacts[2])["id"]
    assert crm.client.delete(f"/api/v1/contacts/{crm.contacts[2]}").status_code == 204
    after = ok(crm.client.get(f"/api/v1/deals/{deal}"))
    assert after["contact_id"] is None and after["contact_ids"] == []  # the deal outlives it
    ok(crm.client.put(f"/api/v1/contacts/{crm.contacts[0]}/tags/VIP"))
    rule(crm, {"has_tag": "VIP"}, 1)
    rule(crm, {"not": {"has_tag": "VIP"}}, 2)  # no contact, so no tag
    rule(crm, {"or": [{"has_tag": "VIP"}, BIG]}, 4)
    rule(crm, {"and": [{"lacks_tag": "VIP"}, BIG]}, 8)
    assert score(crm, deal) == 2 + 4
    # it cannot be saved without a contact, but other changes need none
    problem(crm.client.patch(f"/api/v1/deals/{deal}", json={"contact_id": None}), 422)
    ok(crm.client.patch(f"/api/v1/deals/{deal}", json={"value": 1}))


def test_rule_input_is_checked(crm: Crm) -> None:
    ok(crm.client.post("/api/v1/deal-fields", json={"key": "seats", "type": "number"}), 201)
    good = {
        "name": "seats",
        "condition": {"deal": {"field": "seats", "op": "gte", "value": 10}},
        "points": 3,
    }
    ok(crm.client.post("/api/v1/deal-scoring-rules", json=good), 201)
    cases = [
        ({"condition": {"deal": {"field": "nope", "op": "eq", "value": 1}}}, "unknown deal field"),
        (
            {"condition": {"deal": {"field": "seats", "op": "contains", "value": "x"}}},
            "cannot be compared",
        ),
        (
            {"condition": {"deal": {"field": "value", "op": "gte", "value": "x"}}},
            "must be a number",
        ),
        ({"condition": {"deal": "value"}}, "must be an object"),
        ({"condition": {"bogus": 1}}, "unknown condition"),
        ({"points": 0}, "points"),
        ({"expires_after_days": 0}, "expires_after_days"),
        ({"name": "seats"}, "already exists"),
    ]
    for change, words in cases:
        body = {**good, "name": "x", **change}
        answer = crm.client.post("/api/v1/deal-scoring-rules", json=body)
        assert answer.status_code in (409, 422), (change, answer.text)
        assert words in answer.text, (change, answer.text)
    # a contact segment refuses deal conditions
    error = problem(crm.client.post("/api/v1/segments/preview", json={"condition": BIG}), 422)
    assert "deal conditions apply only to deal scoring rules" in error["detail"]
    assert len(ok(crm.client.get("/api/v1/deal-scoring-rules"))) == 1
