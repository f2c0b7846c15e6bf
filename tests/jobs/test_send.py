"""The send job: a broadcast through the broadcasts code, a single message through the outbox;
a resumed run never queues twice."""

from __future__ import annotations

from sqlalchemy import update

from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.jobs import runner
from tidings.jobs.models import JobRun
from tidings.messaging.models import Broadcast, OutboxMessage

from .helpers import add_contacts, add_template, count, run


def test_a_broadcast_to_a_list_once_even_when_resumed(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    add_contacts(database, clock, 3, lists=["News"])
    add_template(database, clock)
    done = run(database, clock, settings, {"kind": "send", "template": "news", "list": "News"})
    assert done.status == "succeeded" and done.rows_written == 3
    assert count(database, OutboxMessage) == 3
    with database.session() as session:
        session.execute(
            update(JobRun).values(status="running", lease_owner="gone:1:1", lease_until=None)
        )
    [resumed] = runner.resume_unfinished(database, clock=clock, settings=settings)
    assert resumed.status == "succeeded"
    assert count(database, Broadcast) == 1 and count(database, OutboxMessage) == 3


def test_a_broadcast_to_a_segment(database: Database, clock: FakeClock, settings: Settings) -> None:
    add_contacts(database, clock, 2, tags=["vip"])
    add_contacts(database, clock, 2, prefix="d")
    add_template(database, clock)
    spec = {"kind": "send", "template": "news", "segment": {"has_tag": "vip"}, "name": "VIP"}
    done = run(database, clock, settings, spec)
    assert done.rows_written == 2 and count(database, Broadcast, Broadcast.name == "VIP") == 1


def test_a_single_message_to_an_address(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    add_contacts(database, clock, 1)
    add_template(database, clock)
    done = run(
        database, clock, settings, {"kind": "send", "template": "news", "to": "c0@example.com"}
    )
    assert done.status == "succeeded" and done.rows_written == 1
    assert count(database, OutboxMessage, OutboxMessage.idempotency_key == f"job:{done.id}:to") == 1
    missing = run(database, clock, settings, {"kind": "send", "template": "news", "to": "x@y.org"})
    assert missing.status == "failed" and (missing.detail or "").startswith("to:")
    nope = run(
        database, clock, settings, {"kind": "send", "template": "nope", "to": "c0@example.com"}
    )
    assert nope.status == "failed" and (nope.detail or "").startswith("template:")
