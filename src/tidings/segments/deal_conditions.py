"""Conditions about a contact's deals, and (in automations) about the run's deal:

    {"has_deal": {"pipeline": "Sales", "stage": "Proposal", "status": "open"}}
    {"has_deal": {"status": "open", "where": [{"field": "value", "op": "gte", "value": 100000}]}}
    {"triggered_deal": {"stage": "Negotiation", "owner": "ann@example.com"}}

`has_deal`: the contact (as the primary or a further contact) has a deal that matches all that
is given; `{}` means any deal. `triggered_deal`: the run's deal matches (automations only;
false for a run without a deal). Pipelines, stages and owners are named by id or by name (a
pipeline's name, a stage's title, a user's email); `where` compares the deal's own fields as
deal scoring rules do (value, score, status, title, currency, created_at, ..., custom fields).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

KEYS = ("pipeline", "stage", "status", "owner", "where")
MAX_WHERE = 20


class DealsCondition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    triggered: bool = False  # about the run's deal, not any of the contact's deals
    pipeline: int | str | None = Field(default=None, union_mode="left_to_right")
    stage: int | str | None = Field(default=None, union_mode="left_to_right")
    status: Literal["open", "won", "lost"] | None = None
    owner: int | str | None = Field(default=None, union_mode="left_to_right")
    where: tuple[Any, ...] = ()  # FieldConditions on the deal's fields


def parse_deals(
    body: Any,
    here: str,
    *,
    triggered: bool,
    parse_field: Callable[[Any, str], Any],
    fail: Callable[[str, str], Exception],
) -> DealsCondition:
    if not isinstance(body, dict):
        raise fail(here, "must be an object like {'pipeline': 'Sales', 'status': 'open'}")
    for key in body:
        if key not in KEYS:
            raise fail(f"{here}.{key}", f"unknown key; one of: {', '.join(KEYS)}")
    where = body.get("where", [])
    if not isinstance(where, list) or len(where) > MAX_WHERE:
        raise fail(f"{here}.where", f"must be a list of at most {MAX_WHERE} deal comparisons")
    items = tuple(parse_field(item, f"{here}.where[{i}]") for i, item in enumerate(where))
    plain = {k: v for k, v in body.items() if k != "where"}
    for key in ("pipeline", "stage", "owner"):
        value = plain.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | str)):
            raise fail(f"{here}.{key}", "must be an id or a name")
    try:
        return DealsCondition(triggered=triggered, where=items, **plain)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(p) for p in error.get("loc", ()))
        raise fail(f"{here}.{loc}" if loc else here, str(error.get("msg", "invalid"))) from None
