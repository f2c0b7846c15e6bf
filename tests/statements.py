"""Counting the SQL statements a piece of code sends (set-wise code sends as many for ten
rows as for a thousand)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tidings.db.engine import Database


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """The statements sent while the block runs, in order."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", note)
