"""The hook `tidings contacts export --segment` uses."""

from __future__ import annotations

from sqlalchemy import ColumnElement

from tidings.clock import SystemClock
from tidings.db.engine import Database
from tidings.segments.service import compile_checked, resolve


def segment_filter(database: Database, text: str) -> ColumnElement[bool]:
    """A WHERE clause over contacts for `text`: a JSON condition or a saved segment's name."""
    with database.session() as session:
        return compile_checked(session, resolve(session, text), SystemClock().now())
