"""insert_tuples writes what the ORM would (SQLite: executemany, PostgreSQL: COPY)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from tidings.activities.models import Activity
from tidings.db.bulk import insert_tuples
from tidings.db.engine import Database

COLUMNS = ("contact_id", "type", "cause", "occurred_at", "data", "event_id", "machine")
TABLE: Any = Activity.__table__


def test_insert_tuples_round_trip(database: Database) -> None:
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    elsewhere = datetime(2026, 3, 2, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    rows = [
        (1, "tag_added", "automation", at, {"tag": "Tab\there", "tag_id": 3}, None, False),
        (
            None,
            "custom:x",
            "api",
            elsewhere,
            {"q": 'a "quote" \\ and\nnewline', "n": None},
            "k",
            True,
        ),
        (2, "purchase", "api", at, {"items": [1, 2.5, "é"]}, None, False),
    ]
    with database.session() as session:
        insert_tuples(session, TABLE, COLUMNS, rows)
    with database.session() as session:
        stored = session.execute(
            select(
                Activity.contact_id,
                Activity.type,
                Activity.cause,
                Activity.occurred_at,
                Activity.data,
                Activity.event_id,
                Activity.machine,
            ).order_by(Activity.id)
        ).all()
    assert [tuple(row) for row in stored] == [
        rows[0],
        (None, "custom:x", "api", datetime(2026, 3, 2, 9, 30, tzinfo=UTC), rows[1][4], "k", True),
        rows[2],
    ]


def test_insert_tuples_refuses_naive_timestamps(database: Database) -> None:
    with pytest.raises(ValueError, match="naive"), database.session() as session:
        insert_tuples(
            session, TABLE, COLUMNS, [(1, "x", "api", datetime(2026, 3, 2), {}, None, False)]
        )


def test_insert_tuples_shared_and_equal_json_values(database: Database) -> None:
    """A value object shared by many rows is stored in each (encoded once), and equal but
    distinct objects each as themselves."""
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    shared = {"tag": "Engaged", "tag_id": 1}
    rows = [(i, "tag_added", "automation", at, shared, None, False) for i in range(3)]
    rows += [(9, "tag_added", "automation", at, {"tag": f"T{i}"}, None, False) for i in range(3)]
    with database.session() as session:
        insert_tuples(session, TABLE, COLUMNS, rows)
    with database.session() as session:
        stored = list(session.scalars(select(Activity.data).order_by(Activity.id)))
    assert stored == [shared] * 3 + [{"tag": "T0"}, {"tag": "T1"}, {"tag": "T2"}]
