"""The condition language: parsing with errors named by path, and compiled SQL on real data."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from tidings.activities.service import ActivityRow, record_many
from tidings.clock import FakeClock
from tidings.contacts import service
from tidings.contacts.models import Contact
from tidings.db.engine import Database
from tidings.errors import ValidationFailed
from tidings.segments import condition_sql, parse_condition


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            {
                "and": [
                    {"status": "subscribed"},
                    {"has_tag": "A"},
                    {"event": {"type": "email_opened", "within_days": 0}},
                ]
            },
            "and[2].event.within_days: must be > 0",
        ),
        ({"or": [{"bogus": 1}]}, "or[0].bogus: unknown condition"),
        (
            {"field": "first_name", "op": "gt", "value": "a"},
            "op: operator 'gt' does not apply to a text field",
        ),
        ({"field": "first_name", "op": "like", "value": "a"}, "op: unknown operator 'like'"),
        ({"field": "Nope!", "op": "eq", "value": "a"}, "field: unknown field 'Nope!'"),
        ({"not": {"event": {"type": "Opened"}}}, "not.event.type: 'Opened' is not an event type"),
        ({"event": {"type": "email_opened", "at_least": 0}}, "event.at_least: must be >= 1"),
        ({"event": {"type": "email_opened", "colour": 1}}, "event.colour: unknown key"),
        ({"status": ["subscribed", "gone"]}, "status: must be a status or a list of"),
        ({"and": []}, "and: must be a non-empty array"),
        ([], "condition: must be an object"),
        ({"score": {"op": "gte", "value": "ten"}}, "score.value: must be a number"),
        ({"field": "last_open_at", "op": "within_days", "value": -1}, "value: must be > 0"),
        ({"purchase_total": {"op": "gte", "value": -1}}, "purchase_total.value:"),
        ({"score": {"op": "gte", "value": 10**30}}, "score.value: must be within"),
        ({"created": {"before": "0001-01-01T00:00:00+05:00"}}, "created: must be between"),
        (
            {"event": {"type": "email_opened", "since": "9999-12-31T23:59:59-05:00"}},
            "event.since: must be between",
        ),
        (
            {"field": "created_at", "op": "before", "value": "0001-01-01T00:00:00+05:00"},
            "value: must be between",
        ),
        ({"in_list": 10**30}, "in_list.list: must be a list id or name"),
        ({"event": {"type": "purchase", "at_least": 10**30}}, "event.at_least: must be at most"),
        (
            {
                "event": {
                    "type": "purchase",
                    "where": [{"property": "amount", "op": "gt", "value": 1e300}],
                }
            },
            "event.where[0]: numbers must be within",
        ),
    ],
)
def test_parse_errors_name_the_path(condition: Any, message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_condition(condition)
    assert caught.value.detail.startswith(message), caught.value.detail


def _nested(depth: int) -> Any:
    condition: Any = {"has_tag": "A"}
    for level in range(depth):
        condition = {"not": condition} if level % 2 else {"and": [condition]}
    return condition


EVENT = {"type": "email_opened"}
FILTER = {"property": "url", "op": "contains", "value": "x"}


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            {"or": [{"and": [{"has_tag": f"t{i}-{j}"} for j in range(199)]} for i in range(3)]},
            "or[2].and[98]: more than 500 conditions in all (the limit per condition)",
        ),
        (_nested(21), "and[0].not" + ".and[0].not" * 9 + ".and[0]: nested more than 20 levels"),
        (
            {"and": [{"has_tag": "A"}, {"event": {**EVENT, "where": [FILTER] * 21}}]},
            "and[1].event.where: at most 20 filters (the limit of where filters per event)",
        ),
        (
            {"event": {"type": ["email_opened"] * 51}},
            "event.type: at most 50 event types (the limit per event)",
        ),
        (
            {"or": [{"field": "first_name", "op": "not_in", "value": ["a"] * 1001}]},
            "or[0].value: at most 1000 values (the limit of in and not_in)",
        ),
        ({"or": [{"has_tag": "A"}] * 201}, "or: at most 200 conditions (the limit per and/or)"),
    ],
)
def test_what_one_condition_may_cost_is_bounded(condition: Any, message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_condition(condition)
    assert caught.value.detail.startswith(message), caught.value.detail
    field, _, _ = message.partition(": ")
    assert caught.value.errors[0]["field"] == field


def test_conditions_at_the_limits_are_accepted() -> None:
    parse_condition(
        {"or": [{"and": [{"has_tag": f"t{i}-{j}"} for j in range(199)]} for i in range(2)]}
    )
    parse_condition(_nested(20))
    parse_condition({"event": {**EVENT, "where": [FILTER] * 20}})
    parse_condition({"field": "first_name", "op": "in", "value": ["a"] * 1000})


def _ids(database: Database, condition: Any, clock: FakeClock) -> set[int]:
    parsed = parse_condition(condition)
    with database.session() as session:
        return set(session.scalars(select(Contact.id).where(condition_sql(parsed, clock.now()))))


def test_conditions_on_real_data(database: Database, clock: FakeClock) -> None:
    now = clock.now()
    with database.session() as session:
        report = service.upsert_contacts(
            session,
            [
                service.ContactInput(
                    email="a@example.com", first_name="Ann", tags=["VIP"], lists=["News"]
                ),
                service.ContactInput(
                    email="b@example.com", first_name="Bob", status="unsubscribed"
                ),
                service.ContactInput(email="c@example.com"),
            ],
            now=now,
            cause="api",
        )
        a, b, c = report.contact_ids
        record_many(
            session,
            [
                ActivityRow(
                    a, "email_opened", "api", now - timedelta(days=1), {"message_id": "m1"}
                ),
                ActivityRow(b, "email_opened", "api", now - timedelta(days=10), {}),
                ActivityRow(
                    b,
                    "link_clicked",
                    "api",
                    now - timedelta(days=2),
                    {"url": "https://x.test/Pricing"},
                ),
                ActivityRow(
                    c,
                    "purchase",
                    "api",
                    now - timedelta(days=3),
                    {"amount": 12.5, "amount_minor": 1250},
                ),
                ActivityRow(
                    c,
                    "purchase",
                    "api",
                    now - timedelta(days=40),
                    {"amount": 100, "amount_minor": 10000},
                ),
            ],
        )
    opened_or_clicked = {"event": {"type": ["email_opened", "link_clicked"], "within_days": 7}}
    assert _ids(database, opened_or_clicked, clock) == {a, b}
    assert _ids(database, {"and": [opened_or_clicked, {"lacks_tag": "VIP"}]}, clock) == {b}
    assert _ids(database, {"and": [opened_or_clicked, {"status": "subscribed"}]}, clock) == {a}
    assert _ids(database, {"event": {"type": "email_opened", "happened": False}}, clock) == {c}
    assert _ids(database, {"event": {"type": "purchase", "at_least": 2}}, clock) == {c}
    clicked_pricing = {
        "event": {
            "type": "link_clicked",
            "where": [{"property": "url", "op": "contains", "value": "pricing"}],
        }
    }
    assert _ids(database, clicked_pricing, clock) == {b}
    assert _ids(
        database,
        {
            "event": {
                "type": "purchase",
                "where": [{"property": "amount", "op": "gte", "value": 50}],
            }
        },
        clock,
    ) == {c}
    assert _ids(
        database, {"purchase_total": {"op": "gte", "value": 12.5, "within_days": 30}}, clock
    ) == {c}
    assert _ids(
        database, {"purchase_total": {"op": "lt", "value": 20, "within_days": 30}}, clock
    ) == {a, b, c}
    assert (
        _ids(database, {"purchase_total": {"op": "gt", "value": 20, "within_days": 30}}, clock)
        == set()
    )
    assert _ids(database, {"in_list": "News"}, clock) == {a}
    assert _ids(database, {"has_tag": "VIP"}, clock) == {a}
    assert _ids(database, {"field": "first_name", "op": "starts_with", "value": "b"}, clock) == {b}
    assert _ids(database, {"not": {"field": "first_name", "op": "eq", "value": "Ann"}}, clock) == {
        b,
        c,
    }
    assert _ids(database, {"field": "first_name", "op": "is_set"}, clock) == {a, b}
    assert _ids(database, {"created": {"within_days": 1}}, clock) == {a, b, c}
    assert _ids(database, {"score": {"op": "gte", "value": 1}}, clock) == set()


def test_a_count_starts_from_the_required_events_on_postgresql() -> None:
    """from_events: a top-level event (alone or in the root `and`) becomes `= ANY (ARRAY(...))`
    on PostgreSQL; under `not`, `or` or `happened: false` it stays IN (an array searched per
    contact there would be slow); SQLite always gets IN."""
    opened = {"event": {"type": "email_opened", "within_days": 7}}
    now = FakeClock().now()

    def compiled(raw: Any, dialect: Any) -> str:
        where = condition_sql(parse_condition(raw), now, from_events=True)
        return str(select(Contact.id).where(where).compile(dialect=dialect))

    pg, lite = postgresql.dialect(), sqlite.dialect()
    assert "= ANY (ARRAY(SELECT" in compiled(opened, pg)
    assert "= ANY (ARRAY(SELECT" in compiled({"and": [opened, {"lacks_tag": "X"}]}, pg)
    for kept in (
        {"or": [opened, {"has_tag": "X"}]},
        {"not": opened},
        {"event": {"type": "email_opened", "happened": False}},
    ):
        assert "ANY" not in compiled(kept, pg), kept
    assert "ANY" not in compiled(opened, lite)
    assert "contacts.id IN (SELECT" in compiled(opened, lite)
