"""Start triggers: one pydantic model per trigger type, and how each matches an activity.

The registry maps a trigger `type` to a TriggerSpec: the activity types it listens to and a
predicate over one activity row, or, for a trigger no activity starts, the contacts it enrols
on a given day. Adding a trigger is one entry here, in its own module if it is large:
`register(TriggerSpec(...))`, and its model in `Trigger`. The engine asks only the registry
(tidings.automations.matcher). Deal triggers (tidings.automations.deal_triggers) match deal
activities with a `deal` predicate that may name pipelines, stages and users.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, func

from tidings.automations import deal_triggers
from tidings.automations.deal_triggers import DEAL_TRIGGERS, DealNames, DealPredicate
from tidings.automations.system_triggers import SYSTEM_TRIGGERS, SystemTrigger
from tidings.contacts.models import Contact
from tidings.contacts.policy import ContactStatus

ENGAGEMENT_EVENTS = ("email_opened", "link_clicked", "purchase", "site_visit")


class TriggerModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListTrigger(TriggerModel):
    type: Literal["list_subscribed", "list_unsubscribed"]
    list: str | None = Field(default=None, description="list name; none: any list")


class TagTrigger(TriggerModel):
    type: Literal["tag_added", "tag_removed"]
    tag: str = Field(min_length=1, max_length=200)


class PropertyFilter(TriggerModel):
    property: str = Field(min_length=1, max_length=64)
    op: Literal["eq", "neq", "contains", "gt", "gte", "lt", "lte"] = "eq"
    value: Any


class EventTrigger(TriggerModel):
    type: Literal["event"]
    event: str | list[str] = Field(description="event type(s): email_opened, purchase, custom:x")
    where: tuple[PropertyFilter, ...] = ()
    # Opens/clicks made by machines (privacy proxies, link scanners) start nothing by default.
    include_machine: bool = False

    @property
    def events(self) -> list[str]:
        return [self.event] if isinstance(self.event, str) else list(self.event)


class FieldTrigger(TriggerModel):
    type: Literal["field_changed"]
    field: str = Field(min_length=1, max_length=64)
    to: Any = Field(default=None, description="only when the new value equals this")


class StatusTrigger(TriggerModel):
    type: Literal["status_changed"]
    to: ContactStatus | None = None
    from_: ContactStatus | None = Field(default=None, alias="from")


class ScoreTrigger(TriggerModel):
    """Fires when the score crosses `threshold` in `direction` (not for scores already past)."""

    type: Literal["score_threshold"]
    threshold: int
    direction: Literal["up", "down"] = "up"


class DateTrigger(TriggerModel):
    """Once a day: contacts whose date field (YYYY-MM-DD) has its anniversary `days` from
    today (`days: -3` = three days after, `days: 7` = a week before). Use `runs: multiple`
    for a yearly run; `runs: once` enrols a contact on its first anniversary only."""

    type: Literal["date_anniversary"]
    field: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    days: int = Field(default=0, ge=-366, le=366)


class NoTrigger(TriggerModel):
    """Contacts are enrolled by hand or in bulk (API, CLI, start_automation)."""

    type: Literal["none"]


Trigger = Annotated[
    ListTrigger
    | TagTrigger
    | EventTrigger
    | FieldTrigger
    | StatusTrigger
    | ScoreTrigger
    | DateTrigger
    | NoTrigger
    | DEAL_TRIGGERS
    | SystemTrigger,
    Field(discriminator="type"),
]


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    type: str
    activity_types: Callable[[Any], list[str]]
    matches: Callable[[Any, str, dict[str, Any], bool], bool]
    # A trigger that no activity starts: the contacts it enrols on a day (asked once a day).
    daily: Callable[[Any, date], ColumnElement[bool]] | None = None
    # A deal trigger: matches deal activities (with the deal names looked up), and the runs
    # it starts know their deal (see tidings.automations.deal_triggers).
    deal: DealPredicate | None = None


TRIGGERS: dict[str, TriggerSpec] = {}


def register(spec: TriggerSpec) -> None:
    TRIGGERS[spec.type] = spec


def activity_types(trigger: Any) -> list[str]:
    if trigger is None:
        return []
    return TRIGGERS[trigger.type].activity_types(trigger)


def matches(trigger: Any, activity_type: str, data: dict[str, Any], machine: bool) -> bool:
    return TRIGGERS[trigger.type].matches(trigger, activity_type, data, machine)


def is_deal(trigger: Any) -> bool:
    """Whether the trigger is a deal trigger (its runs know their deal)."""
    return trigger is not None and TRIGGERS[trigger.type].deal is not None


def matches_deal(trigger: Any, activity_type: str, data: dict[str, Any], names: DealNames) -> bool:
    predicate = TRIGGERS[trigger.type].deal
    assert predicate is not None
    return predicate(trigger, activity_type, data, names)


def is_daily(trigger: Any) -> bool:
    """Whether the trigger enrols by a daily scan (`enrols_on`) instead of by activities."""
    return trigger is not None and TRIGGERS[trigger.type].daily is not None


def enrols_on(trigger: Any, day: date) -> ColumnElement[bool]:
    """The contacts a daily trigger enrols on `day`."""
    daily = TRIGGERS[trigger.type].daily
    assert daily is not None
    return daily(trigger, day)


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "eq":
        return bool(actual == expected)
    if op == "neq":
        return bool(actual != expected)
    if op == "contains":
        return isinstance(actual, str) and str(expected) in actual
    try:
        a, e = float(actual), float(expected)
    except (TypeError, ValueError):
        return False
    return {"gt": a > e, "gte": a >= e, "lt": a < e, "lte": a <= e}[op]


def _event_matches(t: EventTrigger, _type: str, data: dict[str, Any], machine: bool) -> bool:
    if machine and not t.include_machine:
        return False
    props = data.get("properties") if isinstance(data.get("properties"), dict) else {}
    for f in t.where:
        actual = data.get(f.property, (props or {}).get(f.property))
        if not _compare(f.op, actual, f.value):
            return False
    return True


def _score_matches(t: ScoreTrigger, _type: str, data: dict[str, Any], _m: bool) -> bool:
    old, new = data.get("old"), data.get("new")
    if not isinstance(old, int) or not isinstance(new, int):
        return False
    if t.direction == "up":
        return old < t.threshold <= new
    return old >= t.threshold > new


register(
    TriggerSpec(
        "list_subscribed",
        lambda t: ["list_subscribed"],
        lambda t, _ty, d, _m: t.list is None or d.get("list") == t.list,
    )
)
register(
    TriggerSpec(
        "list_unsubscribed",
        lambda t: ["list_unsubscribed"],
        lambda t, _ty, d, _m: t.list is None or d.get("list") == t.list,
    )
)
register(
    TriggerSpec("tag_added", lambda t: ["tag_added"], lambda t, _ty, d, _m: d.get("tag") == t.tag)
)
register(
    TriggerSpec(
        "tag_removed", lambda t: ["tag_removed"], lambda t, _ty, d, _m: d.get("tag") == t.tag
    )
)
register(TriggerSpec("event", lambda t: t.events, _event_matches))
register(
    TriggerSpec(
        "field_changed",
        lambda t: ["field_changed"],
        lambda t, _ty, d, _m: d.get("field") == t.field and (t.to is None or d.get("new") == t.to),
    )
)
register(
    TriggerSpec(
        "status_changed",
        lambda t: ["status_changed"],
        lambda t, _ty, d, _m: (
            (t.to is None or d.get("new") == t.to) and (t.from_ is None or d.get("old") == t.from_)
        ),
    )
)
register(TriggerSpec("score_threshold", lambda t: ["score_changed"], _score_matches))
register(TriggerSpec("none", lambda t: [], lambda t, _ty, d, _m: False))


def _anniversary(t: DateTrigger, day: date) -> ColumnElement[bool]:
    target = day + timedelta(days=t.days)
    return func.substr(Contact.fields[t.field].as_string(), 6, 5) == target.strftime("%m-%d")


# Date anniversaries match no activity: the engine scans for them once a day.
register(
    TriggerSpec("date_anniversary", lambda t: [], lambda t, _ty, d, _m: False, daily=_anniversary)
)

for _type, _listens, _predicate in deal_triggers.SPECS:
    register(TriggerSpec(_type, _listens, lambda t, _ty, d, _m: False, deal=_predicate))


def _never(*_args: Any) -> bool:
    return False


# System triggers start no contact run: tidings.system starts their runs.
for _type in SYSTEM_TRIGGERS:
    register(TriggerSpec(_type, activity_types=lambda _t: [], matches=_never))
