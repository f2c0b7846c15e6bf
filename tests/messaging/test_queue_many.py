"""The one outbox writer, set-wise: a thousand messages in a handful of statements, each row
queued or refused with the policy's reason, and a key that exists left alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import String, cast, event, func, literal, select

from tests.messaging.helpers import make_contact, make_template
from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.contacts.models import Contact, Suppression
from tidings.db.bulk import insert_tuples
from tidings.db.engine import Database
from tidings.messaging.models import OutboxMessage
from tidings.messaging.outbox import queue_each, queue_many


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements run on `database` inside the block."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", before)


def add_contacts(database: Database, clock: FakeClock, n: int, status: str = "subscribed") -> None:
    now = clock.now()
    columns = ("email", "status", "score", "fields", "created_at", "updated_at")
    rows = [(f"{status}{i}@example.com", status, 0, {}, now, now) for i in range(n)]
    with database.session() as session:
        insert_tuples(session, Contact.__table__, columns, rows)  # type: ignore[arg-type]


def outbox(database: Database) -> dict[str, tuple[str, str | None]]:
    with database.session() as session:
        return {
            r.idempotency_key: (r.status, r.reason)
            for r in session.execute(
                select(OutboxMessage.idempotency_key, OutboxMessage.status, OutboxMessage.reason)
            )
        }


def refusal_activities(database: Database) -> int:
    with database.session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Activity).where(Activity.type == "email_refused")
            )
            or 0
        )


def test_a_thousand_messages_in_a_handful_of_statements(
    database: Database, clock: FakeClock
) -> None:
    add_contacts(database, clock, 990)
    add_contacts(database, clock, 10, status="unsubscribed")
    with database.session() as session:
        make_template(session, clock.now())
        ids = list(session.scalars(select(Contact.id).order_by(Contact.id)))
    messages = [(cid, f"k:{cid}") for cid in ids]
    with database.session() as session, statements(database) as seen:
        results = queue_each(
            session,
            messages,
            template="welcome",
            message_class="automation",
            now=clock.now(),
            cause="automation",
            context={"automation": "A", "step": "mail"},
        )
    # the template's id, the INSERT ... SELECT, the refusals' activities (+ BEGIN/COMMIT)
    assert len([s for s in seen if s.split()[0].upper() not in ("BEGIN", "COMMIT")]) <= 3
    assert sum(r.queued for r in results.values()) == 990
    refused = [r for r in results.values() if not r.queued]
    assert len(refused) == 10
    assert {r.reason for r in refused} == {"status unsubscribed does not allow automation mail"}
    assert refusal_activities(database) == 10
    rows = outbox(database)
    assert len(rows) == 1000
    with database.session() as session:
        context = session.scalar(select(OutboxMessage.context).limit(1))
    assert context == {"automation": "A", "step": "mail"}


def test_every_refusal_has_its_reason_and_a_rerun_queues_nothing_twice(
    database: Database, clock: FakeClock
) -> None:
    now = clock.now()
    with database.session() as session:
        make_template(session, now)
        ok = make_contact(session, "ok@example.com", now).id
        gone = make_contact(session, "gone@example.com", now, status="unsubscribed").id
        blocked = make_contact(session, "x@blocked.example", now).id
        session.add(Suppression(value="@blocked.example", reason="test", created_at=now))
    missing = ok + 1000
    messages = [(ok, "a"), (gone, "b"), (blocked, "c"), (missing, "d")]

    def queue(pairs: list[tuple[int, str]], template: str = "welcome") -> dict[str, Any]:
        with database.session() as session:
            return queue_each(
                session,
                pairs,
                template=template,
                message_class="campaign",
                now=clock.now(),
                cause="api",
            )

    first = queue(messages)
    assert {k: (r.queued, r.reason, r.duplicate) for k, r in first.items()} == {
        "a": (True, "", False),
        "b": (False, "status unsubscribed does not allow campaign mail", False),
        "c": (False, "suppressed: address or domain is on the suppression list", False),
        "d": (False, f"contact {missing} does not exist", False),
    }
    assert refusal_activities(database) == 2  # a contact that does not exist has no history
    again = queue([*messages, (ok, "e")])
    assert again["e"].queued and not again["e"].duplicate
    assert again["a"].queued and again["a"].duplicate
    assert again["a"].outbox_id == first["a"].outbox_id
    assert again["b"].duplicate and not again["b"].queued
    assert again["b"].reason.startswith("already refused under this key: status unsubscribed")
    assert len(outbox(database)) == 5 and refusal_activities(database) == 2
    no_template = queue([(ok, "f"), (missing, "g")], template="missing")
    assert no_template["f"].reason == "template 'missing' does not exist"
    assert no_template["g"].reason == f"contact {missing} does not exist"
    assert outbox(database)["f"] == ("refused", "template 'missing' does not exist")


def test_queue_many_takes_any_select_over_contacts(database: Database, clock: FakeClock) -> None:
    """The broadcast form: the recipients are a query, never loaded into Python."""
    add_contacts(database, clock, 5)
    add_contacts(database, clock, 2, status="bounced")
    with database.session() as session:
        make_template(session, clock.now())
        key = literal("job:1:") + cast(Contact.id, String)
        written = queue_many(
            session,
            select(Contact.id, key, Contact.status, Contact.email).where(
                Contact.email.like("%@example.com")
            ),
            template="welcome",
            message_class="transactional",
            now=clock.now(),
            cause="system",
        )
    assert len(written) == 7 and sum(w.status == "queued" for w in written) == 5
    assert all(w.idempotency_key == f"job:1:{w.contact_id}" for w in written)
    assert (
        sorted(status for status, _ in outbox(database).values())
        == ["queued"] * 5 + ["refused"] * 2
    )


def test_message_tokens_are_unguessable_and_kept_together_per_call(
    database: Database, clock: FakeClock
) -> None:
    """32 hex digits (the Message-ID and VERP form), unique; the rows of one call share a
    prefix so that they land together in the token's unique index."""
    add_contacts(database, clock, 50)
    with database.session() as session:
        make_template(session, clock.now())
        ids = list(session.scalars(select(Contact.id)))
    for half in (ids[:25], ids[25:]):
        with database.session() as session:
            queue_each(
                session,
                [(cid, f"t:{cid}") for cid in half],
                template="welcome",
                message_class="campaign",
                now=clock.now(),
                cause="api",
            )
    with database.session() as session:
        tokens = dict(
            session.execute(select(OutboxMessage.contact_id, OutboxMessage.message_id)).all()
        )
    assert all(re.fullmatch(r"[0-9a-f]{32}", token) for token in tokens.values())
    assert len(set(tokens.values())) == 50
    first, second = ({tokens[cid][:8] for cid in half} for half in (ids[:25], ids[25:]))
    assert len(first) == 1 and len(second) == 1 and first != second
    assert len({tokens[cid][8:] for cid in ids}) == 50
