"""Migration 0016 goes down and up again, keeping the activities it does not own."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command

from tests.deals.helpers import Crm, ok
from tidings.db.engine import Database
from tidings.db.migrate import alembic_config


def _migrate(database: Database, action: object, revision: str) -> None:
    config = alembic_config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config, revision)  # type: ignore[operator]


def test_0016_down_and_up(database: Database) -> None:
    at = datetime(2026, 1, 5, tzinfo=UTC).isoformat()
    with database.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO activities (contact_id, type, cause, data, occurred_at, machine) "
                "VALUES (1, 'tag_added', 'api', '{}', :at, false)"
            ),
            {"at": at},
        )

    def columns() -> set[str]:
        with database.engine.connect() as connection:
            return {c["name"] for c in sa.inspect(connection).get_columns("activities")}

    def tables() -> set[str]:
        with database.engine.connect() as connection:
            return set(sa.inspect(connection).get_table_names())

    assert "deal_id" in columns() and {"deals", "users", "stages"} <= tables()
    _migrate(database, command.downgrade, "0009")
    try:
        assert "deal_id" not in columns() and not {"deals", "users", "stages"} & tables()
    finally:
        _migrate(database, command.upgrade, "head")
    assert "deal_id" in columns() and "deal_score_matches" in tables()
    with database.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM activities")).scalar() == 1


def test_0022_fills_the_furthest_stages_from_the_visits(database: Database, crm: Crm) -> None:
    s0, s1, s2, _ = crm.stages
    a, b, _c = (crm.deal(title=f"D{i}")["id"] for i in range(3))
    ok(crm.client.patch(f"/api/v1/deals/{a}", json={"stage_id": s2}))
    ok(crm.client.patch(f"/api/v1/deals/{a}", json={"stage_id": s0}))  # back: s2 stays furthest
    ok(crm.client.post("/api/v1/deals/bulk/move", json={"deal_ids": [b], "stage_id": s1}))

    def reach() -> set[tuple[int, int]]:
        with database.engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT deal_id, furthest_stage_id FROM deal_stage_reach")
            )
            return {(d, s) for d, s in rows}

    kept = reach()
    assert {(a, s2), (b, s1)} <= kept and len(kept) == 3
    _migrate(database, command.downgrade, "0020")
    _migrate(database, command.upgrade, "head")
    assert reach() == kept
