"""Compile a condition to ONE SQL WHERE clause over contacts (no per-contact Python).

Every atom compiles to a two-valued expression (never SQL NULL), so `not` and `or` mean what
they say in Python: a missing value is simply "does not match".

Deal scoring (`deal_condition_sql`) compiles `{"deal": ...}` comparisons over the deals table
(the caller selects from deals, outer-joined to the primary contact when the condition asks
about it); there every other atom is about that contact, and is false for a deal without one.

Event conditions become `contacts.id IN (SELECT contact_id FROM activities WHERE type IN ...
AND occurred_at in window ...)`, which both databases run as one index range scan over
ix_activities_type_occurred_at followed by a semi-join (see migration 0002). A count
(`from_events`) asks PostgreSQL to start from the contacts those events name (`member_of`);
`lacks_tag` is NOT EXISTS there (`_untagged`).

With `after` (an automation's goals and condition waits: "since the run entered"), each
contact's bound is a column of the query, so event conditions count only the contact's own
activities after it: a correlated probe per contact through ix_activities_contact_id_id,
still one statement for all the runs asked about.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    false,
    func,
    not_,
    or_,
    select,
)

from tidings.activities.models import Activity
from tidings.contacts.models import Contact, ContactTag, ListMembership, MailingList, Tag
from tidings.deals.models import Deal, DealContact
from tidings.deals.refs import owner_is, pipeline_is, stage_is
from tidings.segments.conditions import (
    DEAL_DATE_FIELDS,
    And,
    Condition,
    CreatedCondition,
    DealCondition,
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
    walk,
)
from tidings.segments.deal_conditions import DealsCondition
from tidings.segments.sql_constructs import (
    array_has,
    by_dialect,
    json_bool_text,
    json_number,
    json_present,
    json_text,
    json_value,
    member_of,
)

# ---- compiling ---------------------------------------------------------------------------

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "neq": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


@dataclass(frozen=True, slots=True)
class _Subject:
    """What field comparisons are about: its standard columns and its custom-field JSON."""

    columns: dict[str, Any]
    fields: Any


_CONTACT = _Subject({}, Contact.fields)
_DEAL = _Subject(
    {
        "title": Deal.title,
        "currency": Deal.currency,
        "status": Deal.status,
        "value": Deal.value,
        "score": Deal.score,
        "stage": Deal.stage_id,
        "pipeline": Deal.pipeline_id,
        "owner": Deal.owner_id,
        "created_at": Deal.created_at,
        "updated_at": Deal.updated_at,
        "closed_at": Deal.closed_at,
        "expected_close": Deal.expected_close,
    },
    Deal.fields,
)


def condition_sql(
    condition: Condition,
    now: datetime,
    *,
    after: ColumnElement[Any] | None = None,
    deal: ColumnElement[Any] | None = None,
    from_events: bool = False,
) -> ColumnElement[bool]:
    """A WHERE clause over Contact: `select(Contact.id).where(condition_sql(c, now))`.

    `after`: a timestamp column of the query (e.g. a run's entry time beside each contact);
    event and purchase conditions then count only activities that occurred after it.
    `deal`: a deal id column of the query (an automation run's deal), what `triggered_deal`
    asks about; without it, triggered_deal holds for nobody.
    `from_events`: for a query that reads every match (a count, not a page in id order nor a
    check of given contacts): the events the condition requires choose the contacts read
    (`member_of`)."""
    if not from_events or after is not None:
        return _compile(condition, now, after=after, deal=deal)
    items = condition.items if isinstance(condition, And) else (condition,)
    return and_(
        *(
            _event(item, now, driving=True)
            if isinstance(item, EventCondition) and item.happened
            else _compile(item, now, deal=deal)
            for item in items
        )
    )


def asks_about_triggered_deal(condition: Condition) -> bool:
    return any(isinstance(n, DealsCondition) and n.triggered for n in walk(condition))


def has_events(condition: Condition) -> bool:
    """Whether the condition asks about events (what `after` bounds)."""
    if isinstance(condition, And | Or):
        return any(has_events(item) for item in condition.items)
    if isinstance(condition, Not):
        return has_events(condition.item)
    return isinstance(condition, EventCondition | PurchaseTotalCondition)


def deal_condition_sql(condition: Condition, now: datetime) -> ColumnElement[bool]:
    """A deal rule's condition: a WHERE clause over Deal outer-joined to its primary Contact
    (when `asks_about_contact`). Atoms about the contact are false for a deal without one,
    never NULL, so `not` still means what it says."""
    return _compile(condition, now, Contact.id.is_not(None))


def asks_about_contact(condition: Condition) -> bool:
    """Whether a deal rule's condition reads the primary contact (so needs it joined)."""
    return any(not isinstance(node, And | Or | Not | DealCondition) for node in walk(condition))


def _compile(
    node: Condition,
    now: datetime,
    has_contact: ColumnElement[bool] | None = None,
    after: Any = None,
    deal: Any = None,
) -> ColumnElement[bool]:
    if isinstance(node, And):
        return and_(*(_compile(item, now, has_contact, after, deal) for item in node.items))
    if isinstance(node, Or):
        return or_(*(_compile(item, now, has_contact, after, deal) for item in node.items))
    if isinstance(node, Not):
        return not_(_compile(node.item, now, has_contact, after, deal))
    if isinstance(node, DealCondition):
        return _deal_field(node.item, now)
    atom = _deals(node, now, deal) if isinstance(node, DealsCondition) else _atom(node, now, after)
    return atom if has_contact is None else and_(has_contact, atom)


def _deal_field(item: FieldCondition, now: datetime) -> ColumnElement[bool]:
    if item.field in DEAL_DATE_FIELDS and isinstance(item.value, str):
        item = item.model_copy(update={"value": date.fromisoformat(item.value)})
    return _field(item, now, _DEAL)


def _deals(node: DealsCondition, now: datetime, deal: Any) -> ColumnElement[bool]:
    """has_deal: one of the contact's deals matches; triggered_deal: the run's deal does."""
    where: list[ColumnElement[bool]] = []
    if node.pipeline is not None:
        where.append(pipeline_is(node.pipeline))
    if node.stage is not None:
        where.append(stage_is(node.stage))
    if node.status is not None:
        where.append(Deal.status == node.status)
    if node.owner is not None:
        where.append(owner_is(node.owner))
    where.extend(_deal_field(item, now) for item in node.where)
    if node.triggered:
        if deal is None:
            return false()
        return select(Deal.id).where(Deal.id == deal, *where).exists()
    deals = select(DealContact.contact_id).join(Deal, Deal.id == DealContact.deal_id)
    return Contact.id.in_(deals.where(*where))


def _atom(node: Condition, now: datetime, after: Any = None) -> ColumnElement[bool]:
    if isinstance(node, FieldCondition):
        return _field(node, now)
    if isinstance(node, TagCondition):
        return _tagged(node) if node.present else _untagged(node)
    if isinstance(node, ListCondition):
        return _in_list(node)
    if isinstance(node, StatusCondition):
        return Contact.status.in_([s.value for s in node.statuses])
    if isinstance(node, CreatedCondition):
        parts: list[ColumnElement[bool]] = []
        if node.before is not None:
            parts.append(Contact.created_at < node.before)
        if node.after is not None:
            parts.append(Contact.created_at > node.after)
        if node.within_days is not None:
            parts.append(Contact.created_at >= now - timedelta(days=node.within_days))
        return and_(*parts)
    if isinstance(node, EventCondition):
        return _event(node, now) if after is None else _event_after(node, now, after)
    if isinstance(node, PurchaseTotalCondition):
        if after is None:
            return _purchase_total(node, now)
        return _purchase_total_after(node, now, after)
    raise TypeError(f"not a condition: {node!r}")


def _tagged(node: TagCondition) -> ColumnElement[bool]:
    """has_tag: the tag's contacts as a list both databases start from."""
    return Contact.id.in_(
        select(ContactTag.contact_id)
        .join(Tag, Tag.id == ContactTag.tag_id)
        .where(Tag.name == node.tag)
    )


def _untagged(node: TagCondition) -> ColumnElement[bool]:
    """lacks_tag: NOT EXISTS on PostgreSQL, which cannot turn NOT IN into an anti-join (a NULL
    in the list would change its meaning): it hashed the tag's contacts once per parallel
    worker and probed that hash for each contact, and at 1,000,000 contacts that scan took
    445 ms instead of 68. NOT EXISTS is a join it can order. SQLite keeps NOT IN (one list,
    a quarter faster there than a probe per contact). No NULLs either side: same meaning."""
    tagged = select(ContactTag.contact_id).join(Tag, Tag.id == ContactTag.tag_id)
    tagged = tagged.where(Tag.name == node.tag)
    return by_dialect(
        not_(Contact.id.in_(tagged)),
        not_(tagged.where(ContactTag.contact_id == Contact.id).exists()),
    )


def _in_list(node: ListCondition) -> ColumnElement[bool]:
    members = select(ListMembership.contact_id)
    if isinstance(node.list, int):
        members = members.where(ListMembership.list_id == node.list)
    else:
        members = members.join(MailingList, MailingList.id == ListMembership.list_id).where(
            MailingList.name == node.list
        )
    if node.status != "any":
        members = members.where(ListMembership.status == node.status)
    return Contact.id.in_(members)


def _column(node: FieldCondition, subject: _Subject) -> Any:
    if not node.custom:
        column = subject.columns.get(node.field)
        return getattr(Contact, node.field) if column is None else column
    keys = (node.field,)
    if node.value_kind == "number":
        return json_value(json_number, subject.fields, keys)
    if node.value_kind == "bool":
        return json_value(json_bool_text, subject.fields, keys)
    return json_value(json_text, subject.fields, keys)


def _field(
    node: FieldCondition, now: datetime, subject: _Subject = _CONTACT
) -> ColumnElement[bool]:
    op, value = node.op, node.value
    if node.custom and op in ("is_set", "not_set"):
        is_present = json_value(json_present, subject.fields, (node.field,)).is_not(None)
        return is_present if op == "is_set" else not_(is_present)
    if node.value_kind == "list":
        has = array_has(subject.fields, (node.field,), value)
        return has if op == "includes" else not_(has)
    column = _column(node, subject)
    if op == "not_set":
        return not_(_field(node.model_copy(update={"op": "is_set"}), now, subject))
    if op in ("neq", "not_contains", "not_in", "not_within_days"):
        positive = {"neq": "eq", "not_contains": "contains", "not_in": "in"}.get(op, "within_days")
        return not_(_field(node.model_copy(update={"op": positive}), now, subject))
    present: ColumnElement[bool] = column.is_not(None)
    if op == "is_set":
        if node.value_kind == "text":
            return and_(present, column != "")
        return present
    if node.value_kind == "bool":
        return and_(present, column == ("true" if value else "false"))
    if op == "contains":
        return and_(present, func.lower(column).contains(value.lower(), autoescape=True))
    if op == "starts_with":
        return and_(present, func.lower(column).startswith(value.lower(), autoescape=True))
    if op == "in":
        return and_(present, column.in_(list(value)))
    if op == "within_days":
        return and_(present, column >= now - timedelta(days=value))
    if op == "before":
        return and_(present, column < value)
    if op == "after":
        return and_(present, column > value)
    return and_(present, _COMPARE[op](column, value))


def _window(node: Window, now: datetime) -> list[ColumnElement[bool]]:
    parts: list[ColumnElement[bool]] = []
    if node.within_days is not None:
        parts.append(Activity.occurred_at >= now - timedelta(days=node.within_days))
    if node.since is not None:
        parts.append(Activity.occurred_at >= node.since)
    if node.until is not None:
        parts.append(Activity.occurred_at < node.until)
    return parts


def _property(node: PropertyFilter) -> ColumnElement[bool]:
    keys, op, value = node.path(), node.op, node.value
    if op == "is_set":
        return json_value(json_present, Activity.data, keys).is_not(None)
    if op in ("neq", "not_contains"):
        positive = node.model_copy(update={"op": "eq" if op == "neq" else "contains"})
        return not_(_property(positive))
    if isinstance(value, bool):
        column = json_value(json_bool_text, Activity.data, keys)
        return and_(column.is_not(None), column == ("true" if value else "false"))
    if op in ("gt", "gte", "lt", "lte") or (op == "eq" and not isinstance(value, str)):
        number = json_value(json_number, Activity.data, keys)
        return and_(number.is_not(None), _COMPARE[op](number, value))
    text = json_value(json_text, Activity.data, keys)
    assert isinstance(value, str)
    if op == "contains":
        return and_(text.is_not(None), func.lower(text).contains(value.lower(), autoescape=True))
    if op == "starts_with":
        return and_(text.is_not(None), func.lower(text).startswith(value.lower(), autoescape=True))
    return and_(text.is_not(None), text == value)


def _events(node: EventCondition, now: datetime, kind: Any = Activity.type) -> Any:
    query = select(Activity.contact_id).where(
        kind.in_(list(node.type)),
        Activity.contact_id.is_not(None),  # NOT IN must never meet a NULL
        *_window(node, now),
        *(_property(p) for p in node.where),
    )
    if not node.include_machine:
        query = query.where(Activity.machine == false())
    return query


def _event(node: EventCondition, now: datetime, *, driving: bool = False) -> ColumnElement[bool]:
    query = _events(node, now)
    if node.at_least > 1:
        query = query.group_by(Activity.contact_id).having(func.count() >= node.at_least)
    matched: ColumnElement[bool] = Contact.id.in_(query)
    if driving:
        in_order = query.order_by(Activity.contact_id).scalar_subquery()
        matched = member_of(Contact.id, query.scalar_subquery(), in_order)
    return matched if node.happened else not_(matched)


def _event_after(node: EventCondition, now: datetime, after: Any) -> ColumnElement[bool]:
    """The event condition over the contact's own activities after `after` (correlated).
    The type through coalesce: the way in is the contact's activities (its index), not every
    contact's events of the type since the entry, which SQLite, without statistics, picks."""
    query = _events(node, now, func.coalesce(Activity.type, "")).where(
        Activity.contact_id == Contact.id, Activity.occurred_at > after
    )
    matched: ColumnElement[bool] = query.exists()
    if node.at_least > 1:
        counted = query.with_only_columns(func.count(), maintain_column_froms=True)
        matched = counted.scalar_subquery() >= node.at_least
    return matched if node.happened else not_(matched)


def _purchase_total_after(
    node: PurchaseTotalCondition, now: datetime, after: Any
) -> ColumnElement[bool]:
    """The purchase total of the contact's own purchases after `after` (correlated)."""
    amount = func.coalesce(json_value(json_number, Activity.data, ("amount_minor",)), 0)
    total = (
        select(func.coalesce(func.sum(amount), 0))
        .where(
            Activity.contact_id == Contact.id,
            func.coalesce(Activity.type, "") == "purchase",  # by the contact (_event_after)
            Activity.machine == false(),
            Activity.occurred_at > after,
            *_window(node, now),
        )
        .scalar_subquery()
    )
    return _COMPARE[node.op](total, node.value_minor)  # type: ignore[no-any-return]


def _purchase_total(node: PurchaseTotalCondition, now: datetime) -> ColumnElement[bool]:
    target = node.value_minor
    compare = _COMPARE[node.op]
    if node.within_days is None and node.since is None and node.until is None:
        # All time: the summary column, exact even after raw events are pruned.
        return compare(Contact.purchase_total_minor, target)  # type: ignore[no-any-return]
    amount = func.coalesce(json_value(json_number, Activity.data, ("amount_minor",)), 0)
    total = func.sum(amount)
    buyers = (
        select(Activity.contact_id)
        .where(
            Activity.type == "purchase",
            Activity.contact_id.is_not(None),
            Activity.machine == false(),
            *_window(node, now),
        )
        .group_by(Activity.contact_id)
    )
    # A contact without purchases in the window has total 0. If 0 satisfies the comparison,
    # match everyone except the buyers whose total does not; otherwise only the buyers whose
    # total does. Either way one semi-join, no per-contact subquery.
    if compare(0, target):
        return not_(Contact.id.in_(buyers.having(not_(compare(total, target)))))
    return Contact.id.in_(buyers.having(compare(total, target)))


__all__ = [
    "asks_about_contact",
    "asks_about_triggered_deal",
    "condition_sql",
    "deal_condition_sql",
    "has_events",
    "json_number",
    "json_text",
]
