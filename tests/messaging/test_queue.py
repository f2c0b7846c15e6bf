"""queue_email: the policy decides, the key deduplicates, a refusal is kept with its reason."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.messaging.helpers import make_contact, make_template
from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.contacts.models import Suppression
from tidings.db.engine import Database
from tidings.messaging import queue_email
from tidings.messaging.models import OutboxMessage


def test_queue_then_same_key_is_a_no_op(database: Database, clock: FakeClock) -> None:
    now = clock.now()
    with database.session() as session:
        make_template(session, now)
        contact = make_contact(session, "ann@example.com", now)
        first = queue_email(
            session,
            contact_id=contact.id,
            template="welcome",
            message_class="automation",
            idempotency_key="enrol-1-step-2",
            now=now,
        )
        again = queue_email(
            session,
            contact_id=contact.id,
            template="welcome",
            message_class="automation",
            idempotency_key="enrol-1-step-2",
            now=now,
        )
        assert first.queued and not first.duplicate
        assert again.queued and again.duplicate and again.outbox_id == first.outbox_id
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_refusals_are_recorded_with_reason(database: Database, clock: FakeClock) -> None:
    now = clock.now()
    with database.session() as session:
        make_template(session, now)
        gone = make_contact(session, "gone@example.com", now, status="unsubscribed")
        blocked = make_contact(session, "x@blocked.example", now)
        session.add(Suppression(value="@blocked.example", reason="test", created_at=now))
        session.flush()
        refused = queue_email(
            session,
            contact_id=gone.id,
            template="welcome",
            message_class="campaign",
            idempotency_key="a",
            now=now,
        )
        suppressed = queue_email(
            session,
            contact_id=blocked.id,
            template="welcome",
            message_class="transactional",
            idempotency_key="b",
            now=now,
        )
        no_template = queue_email(
            session,
            contact_id=gone.id,
            template="missing",
            message_class="transactional",
            idempotency_key="c",
            now=now,
        )
        transactional = queue_email(
            session,
            contact_id=gone.id,
            template="welcome",
            message_class="transactional",
            idempotency_key="d",
            now=now,
        )
    assert not refused.queued and "unsubscribed" in refused.reason
    assert not suppressed.queued and "suppress" in suppressed.reason
    assert not no_template.queued and "missing" in no_template.reason
    assert transactional.queued
    with database.session() as session:
        rows = session.execute(
            select(Activity.contact_id, Activity.data).where(Activity.type == "email_refused")
        ).all()
        assert len(rows) == 3
        statuses = dict(
            session.execute(select(OutboxMessage.idempotency_key, OutboxMessage.status)).all()
        )
    assert statuses == {"a": "refused", "b": "refused", "c": "refused", "d": "queued"}
