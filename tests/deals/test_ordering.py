"""Card order within a column: a deal put before or after another, a pure reorder (no timeline
entry, updated_at kept), idempotent, writing only the deal itself when its neighbours are
apart and only the run of crowded cards when they are not; bad ids are field errors."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tests.deals.helpers import Crm, ok, problem
from tidings.db.engine import Database
from tidings.deals.models import Deal


def _order(database: Database, stage: int) -> list[int]:
    with database.session() as session:
        return list(
            session.scalars(
                select(Deal.id).where(Deal.stage_id == stage).order_by(Deal.position, Deal.id)
            )
        )


def _positions(database: Database) -> dict[int, int]:
    with database.session() as session:
        return {i: p for i, p in session.execute(select(Deal.id, Deal.position))}


def _reposition(crm: Crm, deal: int, **body: Any) -> Any:
    return crm.client.post(f"/api/v1/deals/{deal}/reposition", json=body)


def test_spread_out_cards_move_by_the_midpoint_alone(crm: Crm, database: Database) -> None:
    ids = [crm.deal(title=f"D{i}", position=i * 1000)["id"] for i in range(4)]
    before = _positions(database)
    moved = ok(_reposition(crm, ids[3], before_id=ids[1]))
    assert moved["position"] == 500
    assert _order(database, crm.stages[0]) == [ids[0], ids[3], ids[1], ids[2]]
    after = _positions(database)
    assert {i for i in ids if after[i] != before[i]} == {ids[3]}
    ok(_reposition(crm, ids[0], after_id=ids[2]))  # to the end of the column
    assert _order(database, crm.stages[0]) == [ids[3], ids[1], ids[2], ids[0]]


def test_a_reorder_writes_no_timeline_and_keeps_updated_at(crm: Crm, database: Database) -> None:
    ids = [crm.deal(title=f"D{i}")["id"] for i in range(3)]  # one moment: tied positions
    first = ok(crm.client.get(f"/api/v1/deals/{ids[2]}"))
    moved = ok(_reposition(crm, ids[2], before_id=ids[0]))
    assert _order(database, crm.stages[0]) == [ids[2], ids[0], ids[1]]
    assert moved["updated_at"] == first["updated_at"]
    assert [a["type"] for a in crm.timeline(ids[2])] == ["deal_created"]
    positions = _positions(database)
    ok(_reposition(crm, ids[2], before_id=ids[0]))  # the same drop again changes nothing
    assert _positions(database) == positions


def test_crowded_neighbours_spread_out_only_their_run(crm: Crm, database: Database) -> None:
    ids = [crm.deal(title=f"D{p}", position=p)["id"] for p in (0, 1, 2, 10, 20)]
    ok(_reposition(crm, ids[4], after_id=ids[0]))
    assert _order(database, crm.stages[0]) == [ids[0], ids[4], ids[1], ids[2], ids[3]]
    positions = _positions(database)
    assert [positions[i] for i in ids] == [0, 4, 6, 10, 2]  # the room before 10, shared out


def test_a_run_without_room_to_spread_is_shifted_by_two(crm: Crm, database: Database) -> None:
    ids = [crm.deal(title=f"D{p}", position=p)["id"] for p in (0, 1, 2, 5, 20)]
    ok(_reposition(crm, ids[4], after_id=ids[0]))
    assert _order(database, crm.stages[0]) == [ids[0], ids[4], ids[1], ids[2], ids[3]]
    positions = _positions(database)
    assert [positions[i] for i in ids] == [0, 3, 4, 5, 1]  # the deal at 5 stays


def test_a_tied_batch_keeps_its_order_around_the_dropped_card(crm: Crm, database: Database) -> None:
    ids = [crm.deal(title=f"D{i}")["id"] for i in range(5)]
    ok(_reposition(crm, ids[0], after_id=ids[2]))
    ok(_reposition(crm, ids[4], before_id=ids[1]))
    assert _order(database, crm.stages[0]) == [ids[4], ids[1], ids[2], ids[0], ids[3]]


def test_bad_places_are_field_errors(crm: Crm, database: Database) -> None:
    ids = [crm.deal(title=f"D{i}")["id"] for i in range(2)]
    elsewhere = crm.deal(title="X", stage_id=crm.stages[1])["id"]
    cases = [
        ({"before_id": 999_999}, "before_id", "no such deal"),
        ({"after_id": elsewhere}, "after_id", "not in the column"),
        ({"before_id": ids[0]}, "before_id", "itself"),
        ({}, "before_id", "one of them"),
        ({"before_id": ids[1], "after_id": ids[1]}, "before_id", "one of them"),
    ]
    for body, field, words in cases:
        answer = problem(_reposition(crm, ids[0], **body), 422)
        assert answer["errors"][0]["field"] == field and words in answer["detail"], answer
    problem(_reposition(crm, 999_999, before_id=ids[0]), 404)
    assert _order(database, crm.stages[0]) == ids
