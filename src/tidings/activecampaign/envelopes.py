"""ActiveCampaign's conventions: envelopes, string ids, ISO times, limit/offset, filters and
orders, and the composite ids of rows that have none of their own here.

A list answers `{"<plural>": [...], "meta": {"total": "<n>"}}` (total as a string); one
object answers `{"<singular>": {...}}`. Ids are strings. `limit` defaults to 20 (at most
100), `offset` to 0. `filters[name]=value` and `orders[name]=ASC|DESC` are checked against
what each resource allows: an unknown one is a 422 naming it, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from math import isqrt
from typing import Any

from fastapi import Request
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from tidings.errors import field_error
from tidings.inputs import MAX_ID

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_OFFSET = 10_000_000

Filter = Callable[[str], ColumnElement[bool]]


def ac_id(value: int | None) -> str | None:
    return None if value is None else str(value)


def ac_time(value: datetime | date | None) -> str | None:
    """ISO 8601 with its offset (the database keeps UTC)."""
    return None if value is None else value.isoformat()


def ac_bool(value: bool | None) -> str:
    return "1" if value else "0"


def meta(total: int, **extra: Any) -> dict[str, Any]:
    return {"total": str(total), **extra}


def pair(a: int, b: int) -> int:
    """One id for a row keyed by two (a contact's tag, list membership, field value): the
    Cantor pairing, which is invertible, so the id leads back to both keys."""
    return (a + b) * (a + b + 1) // 2 + b


def unpair(value: int) -> tuple[int, int]:
    w = (isqrt(8 * value + 1) - 1) // 2
    b = value - w * (w + 1) // 2
    return w - b, b


def int_param(raw: str, name: str, *, minimum: int = 0, maximum: int = MAX_ID) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise field_error(name, "must be a whole number") from None
    if not minimum <= value <= maximum:
        raise field_error(name, f"must be from {minimum} to {maximum}")
    return value


@dataclass(slots=True)
class Query:
    """The query keys of a list request: paging, filters[...] and orders[...]."""

    limit: int
    offset: int
    filters: dict[str, str]
    orders: list[tuple[str, bool]]  # (name, descending)

    @classmethod
    def of(cls, request: Request) -> Query:
        params = request.query_params
        limit = DEFAULT_LIMIT
        if params.get("limit"):
            limit = int_param(params["limit"], "limit", minimum=1, maximum=MAX_ID)
            limit = min(limit, MAX_LIMIT)  # ActiveCampaign caps, it does not refuse
        offset = (
            int_param(params["offset"], "offset", maximum=MAX_OFFSET) if "offset" in params else 0
        )
        filters: dict[str, str] = {}
        orders: list[tuple[str, bool]] = []
        for key, value in params.multi_items():
            if key.startswith("filters[") and key.endswith("]"):
                filters[key[8:-1]] = value
            elif key.startswith("orders[") and key.endswith("]"):
                direction = value.strip().upper()
                if direction not in ("ASC", "DESC"):
                    raise field_error(key, "must be ASC or DESC")
                orders.append((key[7:-1], direction == "DESC"))
        return cls(limit, offset, filters, orders)


def page(
    session: Session,
    query: Select[Any],
    request: Request,
    *,
    id_column: Any,
    filters: Mapping[str, Filter] | None = None,
    orders: Mapping[str, Any] | None = None,
    extra: Sequence[ColumnElement[bool]] | None = None,
) -> tuple[list[Any], int]:
    """Rows of `query` for this request's filters, orders and page, and the total matching."""
    wanted = Query.of(request)
    allowed = filters or {}
    conditions = list(extra or [])
    for name, value in wanted.filters.items():
        build = allowed.get(name)
        if build is None:
            known = ", ".join(sorted(allowed)) or "none"
            raise field_error(f"filters[{name}]", f"unknown filter (known: {known})")
        conditions.append(build(value))
    if conditions:
        query = query.where(*conditions)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    ordering = []
    for name, descending in wanted.orders:
        column = (orders or {}).get(name)
        if column is None:
            known = ", ".join(sorted(orders or {})) or "none"
            raise field_error(f"orders[{name}]", f"unknown order (known: {known})")
        ordering.append(column.desc() if descending else column.asc())
    ordering.append(id_column.asc())
    rows = session.execute(
        query.order_by(*ordering).limit(wanted.limit).offset(wanted.offset)
    ).all()
    return list(rows), total


def time_filter(column: Any, after: bool) -> Filter:
    def build(raw: str) -> ColumnElement[bool]:
        try:
            value = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise field_error("filters", f"{raw!r} is not a date or time (ISO 8601)") from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        condition: ColumnElement[bool] = column > value if after else column < value
        return condition

    return build


def id_filter(column: Any, name: str) -> Filter:
    def build(raw: str) -> ColumnElement[bool]:
        return column == int_param(raw, f"filters[{name}]", minimum=1)  # type: ignore[no-any-return]

    return build
