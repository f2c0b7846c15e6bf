"""A 5.1.x refusal at RCPT TO bounces the contact, set-wise for a whole sending batch."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import select

from tests.messaging.helpers import make_contact, make_template
from tests.statements import statements
from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.contacts.models import Contact
from tidings.db.engine import Database
from tidings.messaging.bounces import hard_failures_bounce
from tidings.messaging.models import OutboxMessage
from tidings.messaging.outbox import queue_email
from tidings.messaging.transport import SmtpResult

NO_USER = SmtpResult(ok=False, code=550, message="5.1.1 No such user", stage="rcpt")
POLICY = SmtpResult(ok=False, code=550, message="5.7.1 Rejected by policy", stage="rcpt")


def _queued(
    database: Database, clock: FakeClock, emails: list[str], status: str = "subscribed"
) -> list[Any]:
    """One queued message per address (an address twice: two messages), as sender jobs."""
    jobs = []
    with database.session() as session:
        if session.scalar(select(OutboxMessage.id).limit(1)) is None:
            make_template(session, clock.now())
        for index, email in enumerate(emails):
            contact_id = session.scalar(select(Contact.id).where(Contact.email == email))
            if contact_id is None:
                contact_id = make_contact(session, email, clock.now(), status=status).id
            result = queue_email(
                session,
                contact_id=contact_id,
                template="welcome",
                message_class="transactional",
                idempotency_key=f"hard:{email}:{index}:{len(jobs)}:{status}",
                now=clock.now(),
            )
            assert result.outbox_id is not None
            jobs.append(
                SimpleNamespace(id=result.outbox_id, contact_id=contact_id, broadcast_id=None)
            )
    return jobs


def _bounce(database: Database, clock: FakeClock, outcomes: list[Any]) -> int:
    with statements(database) as seen, database.session() as session:
        hard_failures_bounce(session, outcomes, clock.now())
    return len(seen)


def test_a_batch_of_hard_failures(database: Database, clock: FakeClock) -> None:
    ann_1, ann_2, bob = _queued(
        database, clock, ["ann@example.org", "ann@example.org", "bob@example.org"]
    )
    (cat,) = _queued(database, clock, ["cat@example.org"], status="complained")
    (dan,) = _queued(database, clock, ["dan@example.org"])
    outcomes = [
        SimpleNamespace(job=job, result=result)
        for job, result in [
            (ann_1, NO_USER),
            (ann_2, NO_USER),
            (bob, POLICY),
            (cat, NO_USER),
            (dan, NO_USER),
        ]
    ]
    with database.session() as session:
        session.execute(Contact.__table__.delete().where(Contact.id == dan.contact_id))
    _bounce(database, clock, outcomes)
    with database.session() as session:
        statuses = dict(session.execute(select(Contact.email, Contact.status)).all())
        messages = dict(session.execute(select(OutboxMessage.id, OutboxMessage.status)).all())
        history = session.execute(
            select(Activity.contact_id, Activity.type, Activity.data)
            .where(Activity.type.in_(["email_bounced", "status_changed"]))
            .order_by(Activity.id)
        ).all()
    assert statuses == {
        "ann@example.org": "bounced",
        "bob@example.org": "subscribed",
        "cat@example.org": "complained",
    }
    assert messages[ann_1.id] == messages[ann_2.id] == messages[cat.id] == "bounced"
    assert messages[bob.id] == "queued"
    assert [(cid, kind) for cid, kind, _ in history] == [
        (ann_1.contact_id, "email_bounced"),
        (ann_1.contact_id, "email_bounced"),
        (cat.contact_id, "email_bounced"),
        (ann_1.contact_id, "status_changed"),
    ]
    bounced = history[0][2]
    assert bounced == {
        "status": "5.1.1",
        "diagnostic": "550 5.1.1 No such user",
        "outbox_id": ann_1.id,
        "broadcast_id": None,
    }
    assert history[-1][2] == {
        "old": "subscribed",
        "new": "bounced",
        "reason": "hard bounce 5.1.1: 550 5.1.1 No such user",
        "forced": False,
    }


def test_the_statements_do_not_grow_with_the_failures(database: Database, clock: FakeClock) -> None:
    few = _queued(database, clock, [f"few{i}@example.org" for i in range(2)])
    many = _queued(database, clock, [f"many{i}@example.org" for i in range(40)])
    first = _bounce(database, clock, [SimpleNamespace(job=j, result=NO_USER) for j in few])
    second = _bounce(database, clock, [SimpleNamespace(job=j, result=NO_USER) for j in many])
    assert first == second
