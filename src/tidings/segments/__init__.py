"""Segments: a JSON condition language over contacts, compiled to one SQL WHERE clause.

from tidings.segments import parse_condition, condition_sql
ids = session.scalars(select(Contact.id).where(condition_sql(parse_condition(obj), now)))
"""

from tidings.segments.conditions import Condition, parse_condition
from tidings.segments.sql import condition_sql, has_events

__all__ = ["Condition", "condition_sql", "has_events", "parse_condition"]
