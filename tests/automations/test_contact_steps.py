"""The list, field and status steps keep their per-contact rules while running set-wise: a
contact a rule refuses fails its run alone, with the reason; the others change."""

from __future__ import annotations

from sqlalchemy import select

from tests.automations.helpers import activities, automation, contact, make_contacts, step_entries
from tidings.automations.engine import Engine
from tidings.automations.service import enrol_contacts, get_automation
from tidings.clock import FakeClock
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact, CustomField, ListMembership
from tidings.db.engine import Database

STEPS = """
name: Steps
allow_statuses: [subscribed, unsubscribed, transactional]
steps:
  - {id: join, action: subscribe_list, list: News}
  - {id: resub, action: set_status, status: subscribed, reason: came back}
  - {id: age, action: set_field, field: age, value: not a number}
  - {id: plan, action: set_field, field: plan, value: " gold "}
  - {id: name, action: set_field, field: first_name, value: " Ann "}
  - {id: leave, action: unsubscribe_list, list: Other}
"""


def test_list_field_and_status_rules_per_contact(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    plain, left, quit_ = make_contacts(database, clock, 3)
    with database.session() as session:
        now = clock.now()
        session.add(CustomField(key="age", label="Age", type="number", created_at=now))
        session.add(CustomField(key="plan", label="Plan", type="text", created_at=now))
        lists = contacts.ensure_lists(session, ["News", "Other"], now)
        news = contacts.get_list(session, lists["News"])
        other = contacts.get_list(session, lists["Other"])
        for cid in (plain, left, quit_):
            contacts.subscribe_list(
                session, contacts.get_contact(session, cid), other, now=now, cause="api"
            )
        left_contact = contacts.get_contact(session, left)
        contacts.subscribe_list(session, left_contact, news, now=now, cause="api")
        contacts.unsubscribe_list(session, left_contact, news, now=now, cause="api")
        contacts.change_status(
            session, contacts.get_contact(session, quit_), "unsubscribed", now=now, cause="api"
        )
    a = automation(database, clock, STEPS)
    with database.session() as session:
        enrol_contacts(
            session,
            get_automation(session, a.id),
            now=clock.now(),
            contact_ids=[plain, left, quit_],
        )
    engine.run_until_idle()

    rejoin = "contact unsubscribed from list 'News'; rejoining needs force_resubscribe=true"
    assert sorted(step_entries(database, "join")) == [
        (plain, "passed", None),
        (left, "failed", rejoin),
        (quit_, "passed", None),
    ]
    sticky = (
        "contact is unsubscribed; moving it to subscribed needs an explicit resubscribe "
        "(force_resubscribe=true with a reason)"
    )
    assert sorted(step_entries(database, "resub")) == [
        (plain, "passed", None),
        (left, "passed", None),
        (quit_, "failed", sticky),
    ]
    wrong_type = "fields.age: expected a number, got 'not a number'"
    assert {(o, d) for _, o, d in step_entries(database, "age")} == {("failed", wrong_type)}
    assert {o for _, o, _ in step_entries(database, "plan")} == {"passed"}
    assert {o for _, o, _ in step_entries(database, "leave")} == {"passed"}

    with database.session() as session:
        members = dict(
            session.execute(
                select(ListMembership.contact_id, ListMembership.status).where(
                    ListMembership.list_id == news.id
                )
            ).all()
        )
        others = set(
            session.scalars(select(ListMembership.status).where(ListMembership.list_id == other.id))
        )
    assert members == {plain: "active", left: "unsubscribed", quit_: "active"}
    assert others == {"unsubscribed"}
    assert contact(database, quit_).status == "unsubscribed"
    for cid in (plain, left, quit_):
        found = contact(database, cid)
        assert (found.first_name, found.fields) == ("Ann", {"plan": " gold "})
        changed = [
            (x.data["field"], x.data["new"], x.cause)
            for x in activities(database, cid, "field_changed")
        ]
        assert changed == [("plan", " gold ", "automation"), ("first_name", "Ann", "automation")]
    assert [x.data["list"] for x in activities(database, plain, "list_subscribed")] == [
        "Other",
        "News",
    ]
    assert len(activities(database, left, "list_subscribed")) == 2  # Other and News by the API
    assert [x.data for x in activities(database, plain, "status_changed")] == []


def test_a_second_pass_changes_nothing(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    """Setting what is already set writes no activity (so it starts no automation)."""
    ids = make_contacts(database, clock, 3)
    a = automation(
        database,
        clock,
        """
name: Twice
runs: multiple
steps:
  - {id: s, action: set_status, status: subscribed}
  - {id: f, action: set_field, field: last_name, value: Doe}
  - {id: j, action: subscribe_list, list: News}
""",
    )
    for _ in range(2):
        with database.session() as session:
            enrol_contacts(session, get_automation(session, a.id), now=clock.now(), contact_ids=ids)
        engine.run_until_idle()
        clock.advance(days=1)
    assert len(step_entries(database, "j")) == 6  # both passes ran
    for cid in ids:
        assert len(activities(database, cid, "field_changed")) == 1
        assert len(activities(database, cid, "list_subscribed")) == 1
        assert activities(database, cid, "status_changed") == []
    with database.session() as session:
        assert set(session.scalars(select(Contact.last_name))) == {"Doe"}
