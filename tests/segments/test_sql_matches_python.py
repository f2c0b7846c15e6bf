"""Property test: a segment's SQL result equals plain-Python evaluation, on SQLite and PostgreSQL.

Hypothesis generates contacts (status, names, score, custom fields, tags, list memberships,
events ingested through the real ingest path) and random conditions over all of it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.contacts.models import Contact, ContactTag, ListMembership, MailingList, Tag
from tidings.db.engine import Database
from tidings.events.models import EventDaily
from tidings.events.service import ingest_events
from tidings.segments import condition_sql, parse_condition

from .evaluator import Event, Person, evaluate

TAGS = ["A", "B", "C"]
LISTS = ["L1", "L2"]
STATUSES = ["subscribed", "pending", "unsubscribed", "bounced"]
NAMES = [None, "", "Ann", "ann", "Bob", "50%_x"]
PLANS = [None, "pro", "Pro", "free", 3, True]
AGES = [None, 1, 2.5, 40, "40", False]
INTERESTS = [None, [], ["golf"], ["golf", "tea"], ["tea", 3], "golf", {"golf": 1}]
URLS = ["https://shop.test/Pricing", "https://shop.test/a_b", "https://blog.test/"]
EVENT_TYPES = ["email_opened", "link_clicked", "purchase", "site_visit", "custom:trial"]

event_strategy = st.fixed_dictionaries(
    {
        "type": st.sampled_from(EVENT_TYPES),
        "hours_ago": st.integers(0, 24 * 12),
        "machine": st.booleans(),
        "url": st.sampled_from(URLS),
        "amount": st.sampled_from([0, 1.5, 10, 99.99]),
        "plan": st.sampled_from(["pro", "free", None, 7]),
    }
)
person_strategy = st.fixed_dictionaries(
    {
        "status": st.sampled_from(STATUSES),
        "first_name": st.sampled_from(NAMES),
        "score": st.integers(-3, 3),
        "days_old": st.integers(0, 20),
        "plan": st.sampled_from(PLANS),
        "age": st.sampled_from(AGES),
        "interests": st.sampled_from(INTERESTS),
        "tags": st.sets(st.sampled_from(TAGS)),
        "lists": st.dictionaries(
            st.sampled_from(LISTS), st.sampled_from(["active", "unsubscribed"])
        ),
        "events": st.lists(event_strategy, max_size=6),
    }
)

days = st.integers(1, 14)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the clock fixture's start
moments = st.integers(0, 24 * 14).map(lambda h: (NOW - timedelta(hours=h)).isoformat())


def _window(within: int | None, since: str | None, until: str | None) -> dict[str, Any]:
    window: dict[str, Any] = {"within_days": within} if within else {}
    if since and until and since > until:
        since, until = until, since
    if since and until and since == until:
        until = None
    if since:
        window["since"] = since
    if until:
        window["until"] = until
    return window


leaf = st.one_of(
    st.sampled_from(TAGS).map(lambda t: {"has_tag": t}),
    st.sampled_from(TAGS).map(lambda t: {"lacks_tag": t}),
    st.lists(st.sampled_from(STATUSES), min_size=1, max_size=3).map(lambda s: {"status": s}),
    st.builds(
        lambda name, status: {"in_list": {"list": name, "status": status}},
        st.sampled_from(LISTS),
        st.sampled_from(["active", "unsubscribed", "any"]),
    ),
    st.builds(
        lambda op, value: {"field": "first_name", "op": op, "value": value},
        st.sampled_from(["eq", "neq", "contains", "not_contains", "starts_with"]),
        st.sampled_from(["Ann", "a", "%", "_", "b", "x"]),
    ),
    st.sampled_from(["is_set", "not_set"]).map(lambda op: {"field": "first_name", "op": op}),
    st.sampled_from(["is_set", "not_set"]).map(lambda op: {"field": "plan", "op": op}),
    st.builds(
        lambda v: {"field": "first_name", "op": "in", "value": v},
        st.lists(st.sampled_from(["Ann", "ann", "Bob"]), min_size=1, max_size=2),
    ),
    st.builds(
        lambda op, v: {"score": {"op": op, "value": v}},
        st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte"]),
        st.integers(-2, 2),
    ),
    st.builds(
        lambda op, v: {"field": "plan", "op": op, "value": v},
        st.sampled_from(["eq", "neq", "contains", "starts_with"]),
        st.sampled_from(["pro", "P", "free"]),
    ),
    st.builds(
        lambda op, v: {"field": "age", "op": op, "value": v},
        st.sampled_from(["eq", "gt", "lte"]),
        st.sampled_from([1, 2.5, 40]),
    ),
    st.builds(lambda v: {"field": "plan", "op": "eq", "value": v}, st.booleans()),
    st.builds(
        lambda op, v: {"field": "interests", "op": op, "value": v},
        st.sampled_from(["includes", "excludes"]),
        st.sampled_from(["golf", "tea", "3"]),
    ),
    st.builds(
        lambda name, op, d: {"field": name, "op": op, "value": d},
        st.sampled_from(["last_open_at", "last_click_at"]),
        st.sampled_from(["within_days", "not_within_days"]),
        days,
    ),
    st.builds(
        lambda op, v: {"field": "open_count", "op": op, "value": v},
        st.sampled_from(["gte", "lt"]),
        st.integers(0, 3),
    ),
    days.map(lambda d: {"created": {"within_days": d}}),
    st.builds(lambda a: {"created": {"after": a}}, moments),
    st.builds(lambda b: {"created": {"before": b}}, moments),
    st.builds(
        lambda op, v: {"field": "last_open_at", "op": op, "value": v},
        st.sampled_from(["before", "after"]),
        moments,
    ),
    st.builds(
        lambda types, happened, at_least, within, since, until, where, machine: {
            "event": {
                "type": types,
                "happened": happened,
                "at_least": at_least,
                **_window(within, since, until),
                "where": where,
                "include_machine": machine,
            }
        },
        st.lists(st.sampled_from(EVENT_TYPES), min_size=1, max_size=2, unique=True),
        st.booleans(),
        st.integers(1, 3),
        st.one_of(st.none(), days),
        st.one_of(st.none(), moments),
        st.one_of(st.none(), moments),
        st.lists(
            st.one_of(
                st.builds(
                    lambda op, v: {"property": "url", "op": op, "value": v},
                    st.sampled_from(["contains", "not_contains", "starts_with", "eq"]),
                    st.sampled_from(["pricing", "_", "https://blog.test/", "SHOP"]),
                ),
                st.builds(
                    lambda op, v: {"property": "amount", "op": op, "value": v},
                    st.sampled_from(["gte", "lt", "eq"]),
                    st.sampled_from([0, 1.5, 50]),
                ),
                st.builds(
                    lambda op, v: {"property": "properties.plan", "op": op, "value": v},
                    st.sampled_from(["eq", "neq"]),
                    st.sampled_from(["pro", 7]),
                ),
                st.just({"property": "properties.plan", "op": "is_set"}),
            ),
            max_size=2,
        ),
        st.booleans(),
    ),
    st.builds(
        lambda op, v, within, since: {
            "purchase_total": {"op": op, "value": v, **_window(within, since, None)}
        },
        st.sampled_from(["gt", "gte", "lt", "lte", "eq", "neq"]),
        st.sampled_from([0, 1.5, 10, 11.5, 100]),
        st.one_of(st.none(), days),
        st.one_of(st.none(), moments),
    ),
)
conditions = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"and": c}),
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"or": c}),
        children.map(lambda c: {"not": c}),
    ),
    max_leaves=6,
)


def _load(database: Database, clock: FakeClock, people: list[dict[str, Any]]) -> list[Person]:
    now = clock.now()
    out: list[Person] = []
    with database.session() as session:
        for table in (Activity, EventDaily, ContactTag, ListMembership, Tag, MailingList, Contact):
            session.execute(delete(table))
        tag_ids = {}
        for name in TAGS:
            tag = Tag(name=name, created_at=now)
            session.add(tag)
            session.flush()
            tag_ids[name] = tag.id
        list_ids = {}
        for name in LISTS:
            mailing_list = MailingList(name=name, double_opt_in=False, created_at=now)
            session.add(mailing_list)
            session.flush()
            list_ids[name] = mailing_list.id
        raw_events: list[dict[str, Any]] = []
        for index, p in enumerate(people):
            fields = {k: p[k] for k in ("plan", "age", "interests") if p[k] is not None}
            created = now - timedelta(days=p["days_old"], hours=index)
            contact = Contact(
                email=f"p{index}@example.com",
                first_name=p["first_name"],
                status=p["status"],
                score=p["score"],
                fields=fields,
                created_at=created,
                updated_at=created,
            )
            session.add(contact)
            session.flush()
            for tag in p["tags"]:
                session.add(ContactTag(contact_id=contact.id, tag_id=tag_ids[tag], created_at=now))
            for name, status in p["lists"].items():
                session.add(
                    ListMembership(
                        contact_id=contact.id,
                        list_id=list_ids[name],
                        status=status,
                        created_at=now,
                        updated_at=now,
                    )
                )
            person = Person(
                id=contact.id,
                email=contact.email,
                status=p["status"],
                first_name=p["first_name"],
                score=p["score"],
                created_at=created,
                fields=fields,
                tags=set(p["tags"]),
                lists={**p["lists"], **{str(list_ids[k]): v for k, v in p["lists"].items()}},
            )
            for e in p["events"]:
                raw = _raw_event(e, contact.id, now)
                raw_events.append(raw)
                stored = {k: v for k, v in raw.items() if k in ("url", "amount", "message_id")}
                if e["type"] == "purchase":
                    stored["amount_minor"] = round(e["amount"] * 100)
                if "properties" in raw:
                    stored["properties"] = raw["properties"]
                person.events.append(
                    Event(
                        e["type"],
                        now - timedelta(hours=e["hours_ago"]),
                        raw.get("machine", False),
                        stored,
                    )
                )
            out.append(person)
        session.flush()
        report = ingest_events(session, raw_events, now=now, cause="api")
        assert not report.rejected, report.rejected
    return out


def _raw_event(e: dict[str, Any], contact_id: int, now: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "type": e["type"],
        "contact_id": contact_id,
        "occurred_at": (now - timedelta(hours=e["hours_ago"])).isoformat(),
    }
    if e["type"] in ("email_opened", "link_clicked"):
        raw["machine"] = e["machine"]
    if e["type"] in ("link_clicked", "site_visit"):
        raw["url"] = e["url"]
    if e["type"] == "purchase":
        raw["amount"] = e["amount"]
    if e["plan"] is not None:
        raw["properties"] = {"plan": e["plan"]}
    return raw


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    people=st.lists(person_strategy, min_size=1, max_size=6),
    condition_list=st.lists(conditions, min_size=1, max_size=6),
)
def test_sql_equals_python(
    database: Database, clock: FakeClock, people: list[dict[str, Any]], condition_list: list[Any]
) -> None:
    reference = _load(database, clock, people)
    now = clock.now()
    with database.session() as session:
        for raw in condition_list:
            condition = parse_condition(raw)
            got = set(session.scalars(select(Contact.id).where(condition_sql(condition, now))))
            expected = evaluate(condition, reference, now)
            assert got == expected, raw
            # The count's form (PostgreSQL starts from the required events' contacts).
            where = condition_sql(condition, now, from_events=True)
            assert session.scalar(select(func.count()).select_from(Contact).where(where)) == len(
                expected
            ), raw
