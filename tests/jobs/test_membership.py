"""The membership job: a segment's contacts added to a list, removed, unsubscribed."""

from __future__ import annotations

from sqlalchemy import select

from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.contacts.models import Contact, ListMembership
from tidings.db.engine import Database

from .helpers import add_contacts, run


def test_add_remove_and_unsubscribe(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    add_contacts(database, clock, 3, tags=["vip"], lists=["Other"])
    add_contacts(database, clock, 2, prefix="d", lists=["News"])
    segment = {"has_tag": "vip"}
    added = run(
        database,
        clock,
        settings,
        {"kind": "membership", "action": "add", "segment": segment, "list": "News"},
    )
    assert added.status == "succeeded" and (added.rows_read, added.rows_written) == (3, 3)
    again = run(
        database,
        clock,
        settings,
        {"kind": "membership", "action": "add", "segment": segment, "list": "News"},
    )
    assert (again.rows_written, again.rows_skipped) == (0, 3)
    removed = run(
        database,
        clock,
        settings,
        {"kind": "membership", "action": "remove", "segment": segment, "list": "News"},
    )
    assert removed.rows_written == 3
    with database.session() as session:
        active = session.scalar(select(ListMembership.status).where(ListMembership.contact_id == 1))
        assert active is not None
    gone = run(
        database,
        clock,
        settings,
        {"kind": "membership", "action": "unsubscribe", "segment": segment},
    )
    assert gone.rows_written == 3
    with database.session() as session:
        statuses = dict(session.execute(select(Contact.email, Contact.status)).all())
    assert (
        statuses["c0@example.com"] == "unsubscribed" and statuses["d0@example.com"] == "subscribed"
    )


def test_an_unknown_list_fails_the_run_naming_it(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    done = run(
        database,
        clock,
        settings,
        {"kind": "membership", "action": "add", "segment": {"has_tag": "x"}, "list": "Nope"},
    )
    assert done.status == "failed" and "list: list 'Nope' does not exist" in (done.detail or "")
