"""A plain-Python evaluator of parsed conditions: the reference the SQL compiler must agree with."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tidings.segments.conditions import (
    And,
    Condition,
    CreatedCondition,
    EventCondition,
    FieldCondition,
    ListCondition,
    Not,
    Or,
    PropertyFilter,
    PurchaseTotalCondition,
    StatusCondition,
    TagCondition,
    Window,
)

COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "neq": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


@dataclass
class Event:
    type: str
    occurred_at: datetime
    machine: bool
    data: dict[str, Any]


@dataclass
class Person:
    id: int
    email: str
    status: str
    first_name: str | None
    score: int
    created_at: datetime
    fields: dict[str, Any]
    tags: set[str]
    lists: dict[str, str]  # list name -> membership status
    events: list[Event] = field(default_factory=list)

    def summary(self, kind: str) -> datetime | None:
        times = [e.occurred_at for e in self.events if e.type == kind and not e.machine]
        return max(times) if times else None

    def column(self, name: str) -> Any:
        if name == "last_open_at":
            return self.summary("email_opened")
        if name == "last_click_at":
            return self.summary("link_clicked")
        if name == "open_count":
            return sum(1 for e in self.events if e.type == "email_opened" and not e.machine)
        return getattr(self, name)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _typed(value: Any, kind: str) -> Any:
    if kind == "number":
        return value if _is_number(value) else None
    if kind == "bool":
        return value if isinstance(value, bool) else None
    return value if isinstance(value, str) else None


def _field(node: FieldCondition, person: Person, now: datetime) -> bool:
    op, value = node.op, node.value
    if node.custom:
        raw = person.fields.get(node.field)
        if op == "is_set":
            return raw is not None
        if op == "not_set":
            return raw is None
        if node.value_kind == "list":
            has = isinstance(raw, list) and any(isinstance(v, str) and v == value for v in raw)
            return has if op == "includes" else not has
        current = _typed(raw, node.value_kind if node.value_kind != "date" else "text")
    else:
        current = person.column(node.field)
    negate = {"neq": "eq", "not_contains": "contains", "not_in": "in", "not_set": "is_set"}
    if op in negate:
        return not _field(node.model_copy(update={"op": negate[op]}), person, now)
    if op == "not_within_days":
        return not _field(node.model_copy(update={"op": "within_days"}), person, now)
    if current is None:
        return False
    if op == "is_set":
        return current != "" if node.value_kind == "text" else True
    if op == "contains":
        return str(value).lower() in current.lower()
    if op == "starts_with":
        return bool(current.lower().startswith(str(value).lower()))
    if op == "in":
        return current in value
    if op == "within_days":
        return bool(current >= now - timedelta(days=value))
    if op == "before":
        return bool(current < value)
    if op == "after":
        return bool(current > value)
    return COMPARE[op](current, value)


def _in_window(node: Window, event: Event, now: datetime) -> bool:
    if node.within_days is not None and event.occurred_at < now - timedelta(days=node.within_days):
        return False
    if node.since is not None and event.occurred_at < node.since:
        return False
    return not (node.until is not None and event.occurred_at >= node.until)


def _property(node: PropertyFilter, event: Event) -> bool:
    value: Any = event.data
    for key in node.path():
        value = value.get(key) if isinstance(value, dict) else None
    op, wanted = node.op, node.value
    if op == "is_set":
        return value is not None
    if op == "neq":
        return not _property(node.model_copy(update={"op": "eq"}), event)
    if op == "not_contains":
        return not _property(node.model_copy(update={"op": "contains"}), event)
    if isinstance(wanted, bool):
        return isinstance(value, bool) and value == wanted
    if op in ("gt", "gte", "lt", "lte") or (op == "eq" and not isinstance(wanted, str)):
        return _is_number(value) and COMPARE[op](value, wanted)
    if not isinstance(value, str):
        return False
    assert isinstance(wanted, str)
    if op == "contains":
        return wanted.lower() in value.lower()
    if op == "starts_with":
        return value.lower().startswith(wanted.lower())
    return value == wanted


def _event(node: EventCondition, person: Person, now: datetime) -> bool:
    count = sum(
        1
        for e in person.events
        if e.type in node.type
        and (node.include_machine or not e.machine)
        and _in_window(node, e, now)
        and all(_property(p, e) for p in node.where)
    )
    return (count >= node.at_least) == node.happened


def _purchase_total(node: PurchaseTotalCondition, person: Person, now: datetime) -> bool:
    windowed = node.within_days is not None or node.since is not None or node.until is not None
    total = sum(
        e.data.get("amount_minor", 0)
        for e in person.events
        if e.type == "purchase" and not e.machine and (not windowed or _in_window(node, e, now))
    )
    return COMPARE[node.op](total, node.value_minor)


def matches(node: Condition, person: Person, now: datetime) -> bool:
    if isinstance(node, And):
        return all(matches(item, person, now) for item in node.items)
    if isinstance(node, Or):
        return any(matches(item, person, now) for item in node.items)
    if isinstance(node, Not):
        return not matches(node.item, person, now)
    if isinstance(node, FieldCondition):
        return _field(node, person, now)
    if isinstance(node, TagCondition):
        return (node.tag in person.tags) == node.present
    if isinstance(node, ListCondition):
        status = person.lists.get(str(node.list))
        return status is not None and (node.status == "any" or status == node.status)
    if isinstance(node, StatusCondition):
        return person.status in node.statuses
    if isinstance(node, CreatedCondition):
        ok = True
        if node.before is not None:
            ok = ok and person.created_at < node.before
        if node.after is not None:
            ok = ok and person.created_at > node.after
        if node.within_days is not None:
            ok = ok and person.created_at >= now - timedelta(days=node.within_days)
        return ok
    if isinstance(node, EventCondition):
        return _event(node, person, now)
    if isinstance(node, PurchaseTotalCondition):
        return _purchase_total(node, person, now)
    raise TypeError(node)


def evaluate(condition: Condition, people: list[Person], now: datetime) -> set[int]:
    return {p.id for p in people if matches(condition, p, now)}
