"""Migration 0024 (enrolments know their deal) goes down and up again, keeping plain runs."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command

from tidings.db.engine import Database
from tidings.db.migrate import alembic_config


def _migrate(database: Database, action: object, revision: str) -> None:
    config = alembic_config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config, revision)  # type: ignore[operator]


def test_0024_down_and_up(database: Database) -> None:
    at = datetime(2026, 1, 5, tzinfo=UTC).isoformat()
    insert = (
        "INSERT INTO enrolments (automation_id, version, contact_id, state, step, hops, "
        "goals_hit, run_slot, entered_at, deal_id) VALUES (1, 1, :c, 'active', 's', 0, '[]', "
        ":slot, :at, :deal)"
    )
    with database.engine.begin() as connection:
        connection.execute(sa.text(insert), {"c": 1, "slot": "once", "at": at, "deal": None})
        connection.execute(sa.text(insert), {"c": 2, "slot": "o:123456789012", "at": at, "deal": 1})

    def columns() -> set[str]:
        with database.engine.connect() as connection:
            return {c["name"] for c in sa.inspect(connection).get_columns("enrolments")}

    assert "deal_id" in columns()
    _migrate(database, command.downgrade, "0024-1")
    try:
        assert "deal_id" not in columns()
        with database.engine.connect() as connection:
            slots = connection.execute(sa.text("SELECT run_slot FROM enrolments")).scalars()
            assert list(slots) == ["once"]  # the deal run could not keep its slot
    finally:
        _migrate(database, command.upgrade, "head")
    assert "deal_id" in columns()
