"""Reports: the board, won/lost, the funnel, time in stage and the forecast."""

from __future__ import annotations

from sqlalchemy import select

from tests.deals.helpers import Crm, ok, problem
from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.deals import totals
from tidings.deals.models import Deal, StageTotal
from tidings.deals.totals import close_month


def test_board_counts_sums_and_cards_in_order(crm: Crm) -> None:
    a = crm.deal(title="A", value=100)["id"]
    b = crm.deal(title="B", value=250, currency="USD")["id"]
    c = crm.deal(title="C", value=1_000, stage_id=crm.stages[2])["id"]
    crm.deal(title="Won", value=9, status="won")
    ok(crm.client.patch(f"/api/v1/deals/{b}", json={"position": -1}))  # to the top
    board = ok(
        crm.client.get("/api/v1/reports/deals/board", params={"pipeline": crm.pipeline, "cards": 5})
    )
    lead, qualified, proposal, _ = board["stages"]
    assert [s["stage"]["id"] for s in board["stages"]] == crm.stages
    assert lead["count"] == 2
    assert lead["totals"] == [{"currency": "EUR", "value": 100}, {"currency": "USD", "value": 250}]
    assert [card["id"] for card in lead["cards"]] == [b, a]
    assert (qualified["count"], qualified["cards"], qualified["totals"]) == (0, [], [])
    assert [card["id"] for card in proposal["cards"]] == [c]
    won = ok(
        crm.client.get(
            "/api/v1/reports/deals/board", params={"pipeline": crm.pipeline, "status": "won"}
        )
    )
    assert won["stages"][0]["count"] == 1
    first = ok(
        crm.client.get("/api/v1/reports/deals/board", params={"pipeline": crm.pipeline, "cards": 1})
    )
    assert [card["id"] for card in first["stages"][0]["cards"]] == [b]
    problem(crm.client.get("/api/v1/reports/deals/board", params={"pipeline": 999}), 404)
    problem(crm.client.get("/api/v1/reports/deals/board"), 422)


def test_won_lost_by_stage_and_owner(crm: Crm, clock: FakeClock) -> None:
    since = clock.now()
    crm.deal(value=10, owner_id=crm.users[0], status="won")
    crm.deal(value=20, owner_id=crm.users[0], status="lost", stage_id=crm.stages[1])
    crm.deal(value=40, owner_id=crm.users[1], status="won", stage_id=crm.stages[1])
    crm.deal(value=80, status="open")
    clock.advance(hours=1)
    report = ok(
        crm.client.get("/api/v1/reports/deals/won-lost", params={"since": since.isoformat()})
    )
    by_stage = {row["id"]: row for row in report["by_stage"]}
    assert by_stage[crm.stages[0]]["won"] == {
        "count": 1,
        "totals": [{"currency": "EUR", "value": 10}],
    }
    assert by_stage[crm.stages[1]]["won"]["count"] == 1
    assert by_stage[crm.stages[1]]["lost"] == {
        "count": 1,
        "totals": [{"currency": "EUR", "value": 20}],
    }
    by_owner = {row["id"]: row for row in report["by_owner"]}
    assert (by_owner[crm.users[0]]["won"]["count"], by_owner[crm.users[0]]["lost"]["count"]) == (
        1,
        1,
    )
    assert by_owner[crm.users[1]]["won"]["totals"] == [{"currency": "EUR", "value": 40}]
    later = ok(
        crm.client.get("/api/v1/reports/deals/won-lost", params={"since": clock.now().isoformat()})
    )
    assert later["by_stage"] == [] and later["by_owner"] == []
    problem(
        crm.client.get("/api/v1/reports/deals/won-lost", params={"since": "2026-01-01T00:00:00"}),
        422,
    )


def test_funnel_and_time_in_stage(crm: Crm, clock: FakeClock) -> None:
    one, two, three, four = (crm.deal(title=f"D{i}")["id"] for i in range(4))
    clock.advance(hours=1)
    for deal in (one, two, three):
        ok(crm.client.patch(f"/api/v1/deals/{deal}", json={"stage_id": crm.stages[1]}))
    clock.advance(hours=2)
    ok(crm.client.patch(f"/api/v1/deals/{one}", json={"stage_id": crm.stages[3]}))  # skips one
    ok(
        crm.client.post(
            "/api/v1/deals/bulk/move", json={"deal_ids": [two], "stage_id": crm.stages[2]}
        )
    )
    clock.advance(hours=1)
    ok(crm.client.patch(f"/api/v1/deals/{two}", json={"stage_id": crm.stages[0]}))  # back again
    funnel = ok(crm.client.get("/api/v1/reports/deals/funnel", params={"pipeline": crm.pipeline}))
    assert [s["reached"] for s in funnel["stages"]] == [4, 3, 2, 1]
    assert [s["conversion"] for s in funnel["stages"]] == [0.75, 2 / 3, 0.5, None]
    later = ok(
        crm.client.get(
            "/api/v1/reports/deals/funnel",
            params={"pipeline": crm.pipeline, "since": clock.now().isoformat()},
        )
    )
    assert [s["reached"] for s in later["stages"]] == [0, 0, 0, 0]
    times = ok(
        crm.client.get("/api/v1/reports/deals/time-in-stage", params={"pipeline": crm.pipeline})
    )
    lead, qualified, proposal, negotiation = times["stages"]
    assert (lead["stays"], lead["average_seconds"], lead["current"]) == (3, 3600.0, 2)  # four, two
    assert (qualified["stays"], qualified["average_seconds"], qualified["longest_seconds"]) == (
        2,
        7200.0,
        7200.0,
    )
    assert (proposal["stays"], proposal["average_seconds"]) == (1, 3600.0)
    assert (negotiation["stays"], negotiation["current"]) == (0, 1)
    assert four


def test_funnel_follows_the_current_stage_order(crm: Crm) -> None:
    s0, s1, s2, s3 = crm.stages
    a, b = (crm.deal(title=f"D{i}")["id"] for i in range(2))
    ok(crm.client.patch(f"/api/v1/deals/{a}", json={"stage_id": s2}))
    ok(crm.client.post("/api/v1/deals/bulk/move", json={"deal_ids": [b], "stage_id": s1}))

    def reached() -> list[int]:
        params = {"pipeline": crm.pipeline}
        funnel = ok(crm.client.get("/api/v1/reports/deals/funnel", params=params))
        return [s["reached"] for s in funnel["stages"]]

    assert reached() == [2, 2, 1, 0]
    order = f"/api/v1/pipelines/{crm.pipeline}/stages/order"
    ok(crm.client.put(order, json={"stage_ids": [s3, s2, s1, s0]}))
    assert reached() == [2, 2, 2, 2]  # both were in s0, now the last stage
    ok(crm.client.patch(f"/api/v1/deals/{b}", json={"stage_id": s2}))  # behind s0: no change
    assert reached() == [2, 2, 2, 2]
    assert crm.client.delete(f"/api/v1/pipelines/{crm.pipeline}/stages/{s0}").status_code == 204
    assert reached() == [2, 2, 1]  # of s3, s2, s1: a got to s2, b to s1


def test_forecast_by_month_weighted_by_probability(crm: Crm) -> None:
    crm.deal(value=1_000, expected_close="2026-04-03")  # Lead, 10 %
    crm.deal(value=2_000, expected_close="2026-04-28", stage_id=crm.stages[2])  # 60 %
    crm.deal(value=500, expected_close="2026-05-01", stage_id=crm.stages[3])  # 80 %
    crm.deal(value=7, expected_close="2026-05-02", status="won")  # closed: not forecast
    crm.deal(value=9)  # no date
    report = ok(crm.client.get("/api/v1/reports/deals/forecast", params={"pipeline": crm.pipeline}))
    assert report["months"] == [
        {
            "month": "2026-04",
            "currency": "EUR",
            "count": 2,
            "value": 3_000,
            "weighted_value": 1_300,
        },
        {"month": "2026-05", "currency": "EUR", "count": 1, "value": 500, "weighted_value": 400},
    ]
    may = ok(crm.client.get("/api/v1/reports/deals/forecast", params={"since": "2026-05-01"}))
    assert [m["month"] for m in may["months"]] == ["2026-05"]
    # whole months come from the stage totals, other bounds from the deals: the same answer
    april = ok(
        crm.client.get(
            "/api/v1/reports/deals/forecast", params={"since": "2026-04-01", "until": "2026-05-01"}
        )
    )
    assert april["months"] == report["months"][:1]
    late_april = ok(
        crm.client.get(
            "/api/v1/reports/deals/forecast", params={"since": "2026-04-04", "until": "2026-05-02"}
        )
    )
    assert [(m["month"], m["value"]) for m in late_april["months"]] == [
        ("2026-04", 2_000),
        ("2026-05", 500),
    ]


def test_stage_totals_follow_every_kind_of_deal_write(crm: Crm, database: Database) -> None:
    """The board's per-stage totals, kept by increments, always equal a recount."""

    def kept() -> set[tuple[int, int, str, str, str, int, int]]:
        with database.session() as session:
            rows = session.scalars(select(StageTotal).where(StageTotal.deals != 0))
            return {
                (r.pipeline_id, r.stage_id, r.status, r.currency, r.close_month, r.deals, r.value)
                for r in rows
            }

    def recounted() -> set[tuple[int, int, str, str, str, int, int]]:
        groups = (Deal.pipeline_id, Deal.stage_id, Deal.status, Deal.currency)
        with database.session() as session:
            rows = session.execute(select(*groups, Deal.expected_close, Deal.value))
            counted: dict[tuple[int, int, str, str, str], list[int]] = {}
            for p, s, st, c, closing, value in rows:
                bucket = counted.setdefault((p, s, st, c, close_month(closing)), [0, 0])
                bucket[0] += 1
                bucket[1] += value
            return {(*key, n, v) for key, (n, v) in counted.items()}

    ids = [
        crm.deal(value=100 * i, stage_id=crm.stages[i % 3], expected_close=f"2026-0{i}-15")["id"]
        for i in range(1, 7)
    ]
    ok(crm.client.patch(f"/api/v1/deals/{ids[0]}", json={"value": 7, "currency": "USD"}))
    ok(crm.client.patch(f"/api/v1/deals/{ids[5]}", json={"expected_close": "2027-01-31"}))
    ok(crm.client.patch(f"/api/v1/deals/{ids[3]}", json={"expected_close": None}))
    ok(crm.client.patch(f"/api/v1/deals/{ids[1]}", json={"status": "won"}))
    ok(crm.client.patch(f"/api/v1/deals/{ids[2]}", json={"stage_id": crm.stages[3], "value": 1}))
    ok(
        crm.client.post(
            "/api/v1/deals/bulk/move", json={"deal_ids": ids[3:], "stage_id": crm.stages[1]}
        )
    )
    assert crm.client.delete(f"/api/v1/deals/{ids[4]}").status_code == 204
    url = f"/api/v1/pipelines/{crm.pipeline}/stages/{crm.stages[1]}"
    assert crm.client.delete(url, params={"move_to": crm.stages[0]}).status_code == 204
    assert kept() == recounted()
    board = ok(crm.client.get("/api/v1/reports/deals/board", params={"pipeline": crm.pipeline}))
    assert sum(s["count"] for s in board["stages"]) == 4  # 6 made, one won, one deleted
    with database.session() as session:
        totals.rebuild(session)
    assert kept() == recounted()
