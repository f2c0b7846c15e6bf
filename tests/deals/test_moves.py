"""Bulk move: one set-based change for many deals, activities for the real moves only."""

from __future__ import annotations

from sqlalchemy import event, select

from tests.deals.helpers import Crm, ok, problem
from tidings.activities.models import Activity
from tidings.db.engine import Database
from tidings.deals.models import StageVisit


def test_bulk_move_writes_activities_and_visits_for_real_moves(
    crm: Crm, database: Database
) -> None:
    ids = [crm.deal(title=f"D{i}", contact_id=crm.contacts[i % 3])["id"] for i in range(6)]
    already = crm.deal(stage_id=crm.stages[2])["id"]
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        moved = ok(
            crm.client.post(
                "/api/v1/deals/bulk/move",
                json={"deal_ids": [*ids, already], "stage_id": crm.stages[2]},
            )
        )
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    assert moved == {"moved": 6}
    # set-based: the same handful of statements however many deals (no statement per deal)
    assert len([s for s in statements if "deals" in s]) < 20
    with database.session() as session:
        rows = session.scalars(
            select(Activity).where(Activity.type == "deal_stage_changed").order_by(Activity.deal_id)
        ).all()
        assert [r.deal_id for r in rows] == ids
        assert [r.contact_id for r in rows] == [crm.contacts[i % 3] for i in range(6)]
        assert rows[0].data == {
            "pipeline_id": crm.pipeline,
            "from_pipeline_id": crm.pipeline,
            "from_stage_id": crm.stages[0],
            "to_stage_id": crm.stages[2],
        }
        open_visits = session.execute(
            select(StageVisit.deal_id, StageVisit.stage_id).where(StageVisit.left_at.is_(None))
        ).all()
        assert sorted(open_visits) == sorted((i, crm.stages[2]) for i in [*ids, already])
    for deal_id in ids:
        assert ok(crm.client.get(f"/api/v1/deals/{deal_id}"))["stage_id"] == crm.stages[2]
    again = ok(
        crm.client.post(
            "/api/v1/deals/bulk/move", json={"deal_ids": ids, "stage_id": crm.stages[2]}
        )
    )
    assert again == {"moved": 0}


def test_bulk_move_to_another_pipeline_and_bad_input(crm: Crm) -> None:
    deal = crm.deal()
    other = ok(
        crm.client.post(
            "/api/v1/pipelines", json={"name": "B", "currency": "USD", "stages": [{"title": "X"}]}
        ),
        201,
    )
    target = other["stages"][0]["id"]
    ok(
        crm.client.post(
            "/api/v1/deals/bulk/move", json={"deal_ids": [deal["id"]], "stage_id": target}
        )
    )
    after = ok(crm.client.get(f"/api/v1/deals/{deal['id']}"))
    assert (after["pipeline_id"], after["stage_id"], after["currency"]) == (
        other["id"],
        target,
        "EUR",
    )
    change = crm.timeline(deal["id"])[0]["data"]
    assert change["from_pipeline_id"] == crm.pipeline and change["pipeline_id"] == other["id"]
    error = problem(
        crm.client.post(
            "/api/v1/deals/bulk/move", json={"deal_ids": [deal["id"], 777], "stage_id": target}
        ),
        422,
    )
    assert error["errors"] == [{"field": "deal_ids", "message": "no such deal(s): 777"}]
    error = problem(
        crm.client.post(
            "/api/v1/deals/bulk/move", json={"deal_ids": [deal["id"]], "stage_id": 777}
        ),
        422,
    )
    assert error["errors"][0]["field"] == "stage_id"
    problem(
        crm.client.post("/api/v1/deals/bulk/move", json={"deal_ids": [], "stage_id": target}), 422
    )
    problem(
        crm.client.post(
            "/api/v1/deals/bulk/move", json={"deal_ids": list(range(1, 10_002)), "stage_id": target}
        ),
        422,
    )


def test_a_move_rescores_by_the_rules_that_compare_the_stage(crm: Crm) -> None:
    ids = [crm.deal(value=5)["id"] for _ in range(3)]
    rule = {"deal": {"field": "stage", "op": "eq", "value": crm.stages[2]}}
    ok(
        crm.client.post(
            "/api/v1/deal-scoring-rules", json={"name": "late", "condition": rule, "points": 4}
        ),
        201,
    )
    ok(
        crm.client.post(
            "/api/v1/deals/bulk/move", json={"deal_ids": ids[:2], "stage_id": crm.stages[2]}
        )
    )
    assert [ok(crm.client.get(f"/api/v1/deals/{i}"))["score"] for i in ids] == [4, 4, 0]
    url = f"/api/v1/pipelines/{crm.pipeline}/stages/{crm.stages[2]}"
    assert crm.client.delete(url, params={"move_to": crm.stages[1]}).status_code == 204
    assert [ok(crm.client.get(f"/api/v1/deals/{i}"))["score"] for i in ids] == [0, 0, 0]
