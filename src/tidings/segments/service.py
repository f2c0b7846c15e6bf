"""Saved segments and checks of a condition against the custom field definitions and lists."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from tidings.contacts import repository as contacts_repository
from tidings.contacts.fields import FieldDef, FieldType
from tidings.contacts.models import Contact, MailingList
from tidings.errors import Conflict, NotFound, ValidationFailed
from tidings.segments.conditions import (
    And,
    Condition,
    DealCondition,
    FieldCondition,
    ListCondition,
    Not,
    Or,
    parse_condition,
)
from tidings.segments.models import Segment
from tidings.segments.sql import condition_sql

# How each custom field type may be compared (the value's JSON type decides the SQL).
_KINDS_FOR_TYPE = {
    FieldType.TEXT: {"text"},
    FieldType.SINGLE_CHOICE: {"text"},
    FieldType.NUMBER: {"number"},
    FieldType.BOOLEAN: {"bool"},
    FieldType.DATE: {"date", "text"},
    FieldType.MULTI_CHOICE: {"list"},
}


def _atoms(
    node: Condition, path: str
) -> Iterator[tuple[str, FieldCondition | ListCondition, bool]]:
    """Field comparisons and list memberships with their path, named as parse_condition names
    them, and whether they compare a deal's field."""
    if isinstance(node, And | Or):
        kind = "and" if isinstance(node, And) else "or"
        for index, item in enumerate(node.items):
            yield from _atoms(item, f"{path}.{kind}[{index}]" if path else f"{kind}[{index}]")
    elif isinstance(node, Not):
        yield from _atoms(node.item, f"{path}.not" if path else "not")
    elif isinstance(node, FieldCondition):
        yield path, node, False
    elif isinstance(node, DealCondition):
        yield f"{path}.deal" if path else "deal", node.item, True
    elif isinstance(node, ListCondition):
        yield f"{path}.in_list" if path else "in_list", node, False


def check_fields(
    session: Session, condition: Condition, deal_fields: dict[str, FieldDef] | None = None
) -> None:
    """Custom fields named in the condition exist and are compared as their type allows
    (`deal_fields`: the custom deal field definitions, for a deal rule's condition), and the
    lists it names exist (a typo is an error, not a segment of nobody)."""
    definitions = contacts_repository.field_definitions(session)
    lists: list[tuple[str, ListCondition]] = []
    for path, node, of_deal in _atoms(condition, ""):
        if isinstance(node, ListCondition):
            lists.append((path, node))
            continue
        if not node.custom:
            continue
        where = f"{path}." if path else ""
        definition = ((deal_fields or {}) if of_deal else definitions).get(node.field)
        if definition is None:
            kind = "deal field" if of_deal else "field"
            raise ValidationFailed(f"{where}field: unknown {kind} {node.field!r}")
        if node.op in ("is_set", "not_set"):
            continue
        if node.value_kind not in _KINDS_FOR_TYPE[definition.type]:
            raise ValidationFailed(
                f"{where}op: a {definition.type.value} field ({node.field}) cannot be compared "
                f"with op {node.op!r} and value {node.value!r}"
            )
    _check_lists(session, lists)


def _check_lists(session: Session, lists: list[tuple[str, ListCondition]]) -> None:
    if not lists:
        return
    names = {node.list for _, node in lists if isinstance(node.list, str)}
    ids = {node.list for _, node in lists if isinstance(node.list, int)}
    known: set[int | str] = set()
    if names:
        known.update(session.scalars(select(MailingList.name).where(MailingList.name.in_(names))))
    if ids:
        known.update(session.scalars(select(MailingList.id).where(MailingList.id.in_(ids))))
    for path, node in lists:
        if node.list not in known:
            raise ValidationFailed(
                f"{path}: list {node.list!r} does not exist",
                errors=[{"field": path, "message": f"list {node.list!r} does not exist"}],
            )


def compile_checked(
    session: Session, obj: Any, now: datetime, *, counting: bool = False
) -> ColumnElement[bool]:
    """The condition as a WHERE clause over contacts; `counting`: for `count` only (the
    contacts its required events name are read, not all of them: condition_sql)."""
    condition = parse_condition(obj)
    check_fields(session, condition)
    return condition_sql(condition, now, from_events=counting)


def count(session: Session, where: ColumnElement[bool]) -> int:
    return int(session.scalar(select(func.count()).select_from(Contact).where(where)) or 0)


def get_segment(session: Session, segment_id: int) -> Segment:
    segment = session.get(Segment, segment_id)
    if segment is None:
        raise NotFound(f"segment {segment_id} does not exist")
    return segment


def segment_by_name(session: Session, name: str) -> Segment:
    segment = session.scalar(select(Segment).where(Segment.name == name.strip()))
    if segment is None:
        raise NotFound(f"segment {name!r} does not exist")
    return segment


def save_segment(
    session: Session, name: str, obj: Any, *, now: datetime, segment: Segment | None = None
) -> Segment:
    """Create (segment None) or replace a saved segment; the condition is validated first."""
    check_fields(session, parse_condition(obj))
    name = name.strip()
    if not name:
        raise ValidationFailed("name: must not be empty")
    clash = session.scalar(select(Segment.id).where(Segment.name == name))
    if clash is not None and (segment is None or clash != segment.id):
        raise Conflict(f"a segment named {name!r} already exists")
    if segment is None:
        segment = Segment(name=name, condition=obj, created_at=now, updated_at=now)
        session.add(segment)
    else:
        segment.name, segment.condition, segment.updated_at = name, obj, now
    session.flush()
    return segment


def resolve(session: Session, text: str) -> Any:
    """A condition given as JSON text, or the condition of the saved segment of that name."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise ValidationFailed(f"segment: not valid JSON ({exc})") from None
    return segment_by_name(session, stripped).condition
