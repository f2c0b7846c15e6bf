"""The segment condition language: JSON in, typed pydantic models out, errors named by path.

A condition is a JSON object with exactly one key naming its kind (the field comparison is the
one exception: `{"field": ..., "op": ..., "value": ...}`):

    {"and": [C, ...]}   {"or": [C, ...]}   {"not": C}
    {"field": "first_name", "op": "eq", "value": "Ann"}
    {"has_tag": "VIP"}   {"lacks_tag": "VIP"}
    {"in_list": "Newsletter"}   {"in_list": {"list": 3, "status": "unsubscribed"}}
    {"status": ["subscribed", "pending"]}
    {"score": {"op": "gte", "value": 10}}
    {"created": {"after": "2026-01-01T00:00:00Z", "within_days": 30}}
    {"event": {"type": ["email_opened", "link_clicked"], "within_days": 7, "at_least": 2,
               "where": [{"property": "url", "op": "contains", "value": "pricing"}]}}
    {"purchase_total": {"op": "gte", "value": 100, "within_days": 90}}

Deal scoring rules (tidings.deals.scoring) add one kind, a comparison on the deal itself; every
other kind then asks about the deal's primary contact:

    {"deal": {"field": "value", "op": "gte", "value": 1000000}}

What one condition may cost is bounded (each becomes SQL run over every contact): at most
MAX_NODES conditions in all, MAX_DEPTH levels of and/or/not, MAX_WHERE property filters per
event condition, MAX_EVENT_TYPES types per event condition and MAX_VALUES values in `in` /
`not_in`. Crossing one is a ValidationFailed naming the limit and the path. Automations' if,
wait and goal conditions are parsed here, so they are bounded alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tidings.contacts.policy import ContactStatus
from tidings.errors import ValidationFailed
from tidings.inputs import NUL_MESSAGE, find_nul
from tidings.segments.deal_conditions import DealsCondition, parse_deals

MAX_NODES = 500
MAX_DEPTH = 20
MAX_ITEMS = 200  # conditions in one and/or (MAX_NODES bounds them all together)
MAX_WHERE = 20
MAX_EVENT_TYPES = 50
MAX_VALUES = 1000
# Integers beyond 2**53 lose precision as floats and overflow 64-bit columns.
MAX_NUMBER = 2**53

TEXT_FIELDS = frozenset({"email", "first_name", "last_name", "phone"})
NUMBER_FIELDS = frozenset(
    {"score", "open_count", "click_count", "purchase_count", "visit_count", "purchase_total_minor"}
)
TIME_FIELDS = frozenset(
    {
        "created_at",
        "updated_at",
        "last_open_at",
        "last_click_at",
        "last_purchase_at",
        "last_visit_at",
        "last_engaged_at",
    }
)
STANDARD_FIELDS = TEXT_FIELDS | NUMBER_FIELDS | TIME_FIELDS
# A deal's own fields (`{"deal": {...}}`); stage, pipeline and owner compare their ids.
DEAL_TEXT_FIELDS = frozenset({"title", "currency", "status"})
DEAL_NUMBER_FIELDS = frozenset({"value", "score", "stage", "pipeline", "owner"})
DEAL_TIME_FIELDS = frozenset({"created_at", "updated_at", "closed_at"})
DEAL_DATE_FIELDS = frozenset({"expected_close"})
CUSTOM_FIELD_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
PROPERTY_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,40}|custom:[A-Za-z0-9_.\-]{1,56}")

TEXT_OPS = frozenset(
    {"eq", "neq", "contains", "not_contains", "starts_with", "in", "not_in", "is_set", "not_set"}
)
NUMBER_OPS = frozenset({"eq", "neq", "gt", "gte", "lt", "lte", "is_set", "not_set"})
TIME_OPS = frozenset({"before", "after", "within_days", "not_within_days", "is_set", "not_set"})
BOOL_OPS = frozenset({"eq", "is_set", "not_set"})
DATE_TEXT_OPS = frozenset({"before", "after", "eq", "neq", "is_set", "not_set"})
# multi_choice custom fields (a JSON array of options)
LIST_OPS = frozenset({"includes", "excludes", "is_set", "not_set"})
ALL_OPS = TEXT_OPS | NUMBER_OPS | TIME_OPS | BOOL_OPS | LIST_OPS

Compare = Literal["eq", "neq", "gt", "gte", "lt", "lte"]


def _moment(value: datetime | None) -> datetime | None:
    """Timestamps in conditions: with a timezone, and within years 1..9998 once in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("needs a timezone (e.g. 2026-01-01T00:00:00Z)")
    if not 1 < value.year < 9999:
        raise ValueError("must be between the years 2 and 9998")
    return value


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class And(Node):
    kind: Literal["and"] = "and"
    items: tuple[Condition, ...]


class Or(Node):
    kind: Literal["or"] = "or"
    items: tuple[Condition, ...]


class Not(Node):
    kind: Literal["not"] = "not"
    item: Condition


class FieldCondition(Node):
    """A comparison on a contact column or custom field. `value_kind` says how it compares:
    text, number, time (timestamp columns), bool, or date (custom date fields, YYYY-MM-DD)."""

    field: str
    op: str
    value: Any = None
    value_kind: Literal["text", "number", "time", "bool", "date", "list"] = "text"
    custom: bool = False


class DealCondition(Node):
    """A comparison on the deal's own fields (deal scoring only)."""

    item: FieldCondition


class TagCondition(Node):
    tag: str = Field(min_length=1, max_length=200)
    present: bool = True


class ListCondition(Node):
    list: int | str = Field(union_mode="left_to_right")

    @field_validator("list")
    @classmethod
    def _list(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 0 < value < 2**63:
            raise ValueError("must be a list id or name")
        return value

    status: Literal["active", "unsubscribed", "pending", "any"] = "active"


class StatusCondition(Node):
    statuses: tuple[ContactStatus, ...] = Field(min_length=1, max_length=len(ContactStatus))


class Window(Node):
    within_days: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    @field_validator("within_days")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise ValueError("must be > 0")
        if value is not None and value > 36_600:
            raise ValueError("must be at most 36600")
        return value

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _moment(value)

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class PropertyFilter(Node):
    property: str
    op: Literal[
        "eq", "neq", "contains", "not_contains", "starts_with", "gt", "gte", "lt", "lte", "is_set"
    ]
    value: str | float | bool | None = None

    @field_validator("property")
    @classmethod
    def _path(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) > 2 or not all(PROPERTY_KEY.fullmatch(p) for p in parts):
            raise ValueError("must be a property name like 'url' or 'properties.plan'")
        return value

    @model_validator(mode="after")
    def _typed(self) -> PropertyFilter:
        if self.op == "is_set":
            return self
        value = self.value
        if isinstance(value, int | float) and not abs(value) <= MAX_NUMBER:
            raise ValueError(f"numbers must be within +-{MAX_NUMBER:.0e}")
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if self.op in ("gt", "gte", "lt", "lte") and not numeric:
            raise ValueError(f"op {self.op} needs a number value")
        if self.op in ("contains", "not_contains", "starts_with") and not isinstance(value, str):
            raise ValueError(f"op {self.op} needs a text value")
        if value is None:
            raise ValueError(f"op {self.op} needs a value")
        return self

    def path(self) -> tuple[str, ...]:
        return tuple(self.property.split("."))


class EventCondition(Window):
    type: tuple[str, ...] = Field(min_length=1)
    happened: bool = True
    at_least: int = 1
    where: tuple[PropertyFilter, ...] = ()
    include_machine: bool = False

    @field_validator("type", mode="before")
    @classmethod
    def _types(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > MAX_EVENT_TYPES:
            raise ValueError(f"at most {MAX_EVENT_TYPES} event types (the limit per event)")
        return [value] if isinstance(value, str) else value

    @field_validator("where", mode="before")
    @classmethod
    def _filters(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > MAX_WHERE:
            raise ValueError(f"at most {MAX_WHERE} filters (the limit of where filters per event)")
        return value

    @field_validator("type")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not EVENT_TYPE.fullmatch(item):
                raise ValueError(f"{item!r} is not an event type (custom events: 'custom:NAME')")
        return value

    @field_validator("at_least")
    @classmethod
    def _count(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be >= 1")
        if value > 1_000_000_000:
            raise ValueError("must be at most 1000000000")
        return value


class PurchaseTotalCondition(Window):
    op: Literal["gt", "gte", "lt", "lte", "eq", "neq"]
    value: float = Field(ge=0, le=1e12)

    @property
    def value_minor(self) -> int:
        return round(self.value * 100)


class CreatedCondition(Node):
    before: datetime | None = None
    after: datetime | None = None
    within_days: int | None = Field(default=None, gt=0, le=36_600)

    @model_validator(mode="after")
    def _something(self) -> CreatedCondition:
        if self.before is None and self.after is None and self.within_days is None:
            raise ValueError("give before, after or within_days")
        for value in (self.before, self.after):
            _moment(value)
        return self


Condition = (
    And
    | Or
    | Not
    | FieldCondition
    | TagCondition
    | ListCondition
    | StatusCondition
    | EventCondition
    | PurchaseTotalCondition
    | CreatedCondition
    | DealCondition
    | DealsCondition
)
for _recursive in (And, Or, Not):
    _recursive.model_rebuild()

KINDS = (
    "and",
    "or",
    "not",
    "field",
    "has_tag",
    "lacks_tag",
    "in_list",
    "status",
    "score",
    "created",
    "event",
    "purchase_total",
    "has_deal",
)


def parse_condition(obj: Any, *, deal: bool = False, automation: bool = False) -> Condition:
    """Validate a JSON condition; ValidationFailed names the path of the first problem.
    `deal`: a deal scoring rule's condition, which may also compare the deal's own fields.
    `automation`: an automation's, which may also ask about the run's deal (triggered_deal)."""
    where = find_nul(obj)
    if where is not None:
        raise _fail(where, NUL_MESSAGE)
    return _parse(obj, "", 0, _Budget(automation=automation), deal)


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def _fail(path: str, message: str) -> ValidationFailed:
    where = path or "condition"
    return ValidationFailed(f"{where}: {message}", errors=[{"field": where, "message": message}])


NodeT = TypeVar("NodeT", bound=Node)


def _model(model: type[NodeT], data: Any, path: str) -> NodeT:
    if not isinstance(data, dict):
        raise _fail(path, "must be an object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = path
        for part in error.get("loc", ()):
            where = _join(where, part)
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            message = "unknown key"
        raise _fail(where, message) from None


@dataclass(slots=True)
class _Budget:
    """The conditions one parse may still take."""

    nodes: int = MAX_NODES
    automation: bool = False  # triggered_deal is allowed (an automation's condition)


def _parse(obj: Any, path: str, depth: int, budget: _Budget, deal: bool) -> Condition:
    if depth > MAX_DEPTH:
        raise _fail(path, f"nested more than {MAX_DEPTH} levels (the depth limit)")
    budget.nodes -= 1
    if budget.nodes < 0:
        raise _fail(path, f"more than {MAX_NODES} conditions in all (the limit per condition)")
    if not isinstance(obj, dict):
        raise _fail(path, "must be an object")
    if "field" in obj:
        return _field(obj, path)
    if len(obj) != 1:
        raise _fail(path, f"must have exactly one key, one of: {', '.join(KINDS)}")
    ((key, body),) = obj.items()
    here = _join(path, key)
    if key in ("and", "or"):
        if not isinstance(body, list) or not body:
            raise _fail(here, "must be a non-empty array of conditions")
        if len(body) > MAX_ITEMS:
            raise _fail(here, f"at most {MAX_ITEMS} conditions (the limit per and/or)")
        items = tuple(
            _parse(item, f"{here}[{i}]", depth + 1, budget, deal) for i, item in enumerate(body)
        )
        return And(items=items) if key == "and" else Or(items=items)
    if key == "not":
        return Not(item=_parse(body, here, depth + 1, budget, deal))
    if key in ("has_tag", "lacks_tag"):
        if not isinstance(body, str) or not body.strip():
            raise _fail(here, "must be a tag name")
        return TagCondition(tag=body.strip(), present=key == "has_tag")
    if key == "in_list":
        data = body if isinstance(body, dict) else {"list": body}
        if isinstance(data.get("list"), bool):
            raise _fail(_join(here, "list"), "must be a list id or name")
        return _model(ListCondition, data, here)
    if key == "status":
        data = {"statuses": [body] if isinstance(body, str) else body}
        try:
            return StatusCondition.model_validate(data)
        except ValidationError:
            allowed = ", ".join(s.value for s in ContactStatus)
            raise _fail(here, f"must be a status or a list of: {allowed}") from None
    if key == "score":
        if not isinstance(body, dict):
            raise _fail(here, "must be an object like {'op': 'gte', 'value': 10}")
        extra = set(body) - {"op", "value"}
        if extra:
            raise _fail(_join(here, sorted(extra)[0]), "unknown key")
        return _field({"field": "score", **body}, here)
    if key == "created":
        return _model(CreatedCondition, body, here)
    if key == "event":
        return _model(EventCondition, body, here)
    if key == "purchase_total":
        return _model(PurchaseTotalCondition, body, here)
    if key in ("has_deal", "triggered_deal"):
        if key == "triggered_deal" and not budget.automation:
            raise _fail(here, "triggered_deal applies only to automations' conditions")
        return parse_deals(
            body,
            here,
            triggered=key == "triggered_deal",
            parse_field=_deal_field,
            fail=_fail,
        )
    if key == "deal":
        if not deal:
            raise _fail(here, "deal conditions apply only to deal scoring rules")
        if not isinstance(body, dict) or "field" not in body:
            raise _fail(here, "must be an object like {'field': 'value', 'op': 'gte', 'value': 1}")
        return DealCondition(item=_field(body, here, DEAL_FIELDS))
    raise _fail(here, f"unknown condition; expected one of: {', '.join(KINDS)}")


def _deal_field(obj: Any, path: str) -> FieldCondition:
    if not isinstance(obj, dict):
        raise _fail(path, "must be an object like {'field': 'value', 'op': 'gte', 'value': 1}")
    return _field(obj, path, DEAL_FIELDS)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class FieldSet:
    """The standard fields of what a field comparison is about, by how they compare."""

    text: frozenset[str]
    number: frozenset[str]
    time: frozenset[str]
    date: frozenset[str] = frozenset()

    @property
    def standard(self) -> frozenset[str]:
        return self.text | self.number | self.time | self.date


CONTACT_FIELDS = FieldSet(TEXT_FIELDS, NUMBER_FIELDS, TIME_FIELDS)
DEAL_FIELDS = FieldSet(DEAL_TEXT_FIELDS, DEAL_NUMBER_FIELDS, DEAL_TIME_FIELDS, DEAL_DATE_FIELDS)


def _field(obj: dict[str, Any], path: str, fields: FieldSet = CONTACT_FIELDS) -> FieldCondition:
    extra = set(obj) - {"field", "op", "value"}
    if extra:
        raise _fail(_join(path, sorted(extra)[0]), "unknown key")
    name, op, value = obj.get("field"), obj.get("op"), obj.get("value")
    if not isinstance(name, str):
        raise _fail(_join(path, "field"), "must be a field name")
    if not isinstance(op, str) or op not in ALL_OPS:
        raise _fail(_join(path, "op"), f"unknown operator {op!r}")
    custom = name not in fields.standard
    if custom and not CUSTOM_FIELD_KEY.fullmatch(name):
        raise _fail(_join(path, "field"), f"unknown field {name!r}")
    kind = _kind(name, op, value, custom, fields)
    allowed = {
        "text": TEXT_OPS,
        "number": NUMBER_OPS,
        "time": TIME_OPS,
        "bool": BOOL_OPS,
        "date": DATE_TEXT_OPS,
        "list": LIST_OPS,
    }[kind]
    if op not in allowed:
        raise _fail(_join(path, "op"), f"operator {op!r} does not apply to a {kind} field")
    value = _check_value(kind, op, value, _join(path, "value"))
    return FieldCondition(field=name, op=op, value=value, value_kind=kind, custom=custom)


def _kind(
    name: str, op: str, value: Any, custom: bool, fields: FieldSet
) -> Literal["text", "number", "time", "bool", "date", "list"]:
    if name in fields.text:
        return "text"
    if name in fields.number:
        return "number"
    if name in fields.time:
        return "time"
    if name in fields.date:
        return "date"
    # A custom field: its type is checked against the definitions by `check_fields`; here the
    # value decides how the JSON value is compared.
    if isinstance(value, bool):
        return "bool"
    if _is_number(value):
        return "number"
    if op in ("before", "after"):
        return "date"
    if op in ("includes", "excludes"):
        return "list"
    return "text"


DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


def _check_value(kind: str, op: str, value: Any, path: str) -> Any:
    if op in ("is_set", "not_set"):
        if value is not None:
            raise _fail(path, f"operator {op!r} takes no value")
        return None
    if kind == "text":
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise _fail(path, "must be a non-empty array of text values")
            if len(value) > MAX_VALUES:
                raise _fail(path, f"at most {MAX_VALUES} values (the limit of in and not_in)")
            if not all(isinstance(v, str) for v in value):
                raise _fail(path, "must be a non-empty array of text values")
            return tuple(value)
        if not isinstance(value, str):
            raise _fail(path, "must be text")
        return value
    if kind == "number":
        if not _is_number(value):
            raise _fail(path, "must be a number")
        if not abs(value) <= MAX_NUMBER:
            raise _fail(path, f"must be within +-{MAX_NUMBER:.0e}")
        return value
    if kind == "bool":
        return value
    if kind == "list":
        if not isinstance(value, str) or not value:
            raise _fail(path, "must be one option (text)")
        return value
    if kind == "date":
        if not isinstance(value, str) or not DATE_TEXT.fullmatch(value):
            raise _fail(path, "must be a date YYYY-MM-DD")
        return value
    # time columns
    if op in ("within_days", "not_within_days"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _fail(path, "must be a whole number of days")
        if value <= 0:
            raise _fail(path, "must be > 0")
        if value > 36_600:
            raise _fail(path, "must be at most 36600")
        return value
    if not isinstance(value, str):
        raise _fail(path, "must be a timestamp like 2026-01-01T00:00:00Z")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(path, "must be a timestamp like 2026-01-01T00:00:00Z") from None
    try:
        return _moment(moment)
    except ValueError as exc:
        raise _fail(path, str(exc)) from None


def walk(condition: Condition) -> list[Condition]:
    """Every node of a condition tree, depth first."""
    out: list[Condition] = [condition]
    if isinstance(condition, And | Or):
        for item in condition.items:
            out.extend(walk(item))
    elif isinstance(condition, Not):
        out.extend(walk(condition.item))
    return out
