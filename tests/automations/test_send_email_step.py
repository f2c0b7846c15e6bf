"""The send_email step, set-wise: one INSERT ... SELECT into the outbox per batch, the
idempotency key per (automation, enrolment, step, visit), refusals as the step's outcome."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event, select

from tests.automations.helpers import automation, make_contacts, step_entries
from tests.messaging.helpers import make_template
from tidings.automations.engine import Engine
from tidings.automations.models import Enrolment
from tidings.automations.service import enrol_contacts, get_automation
from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.messaging.models import OutboxMessage


def test_a_batch_queues_its_emails_in_one_statement(database: Database, clock: FakeClock) -> None:
    a = automation(
        database,
        clock,
        """
name: Mail
allow_statuses: [subscribed, unsubscribed]
steps:
  - {id: mail, action: send_email, template: welcome}
""",
    )
    subscribed = make_contacts(database, clock, 430)
    unsubscribed = make_contacts(database, clock, 20, status="unsubscribed", prefix="u")
    with database.session() as session:
        make_template(session, clock.now())
        enrol_contacts(session, get_automation(session, a.id), now=clock.now(), everyone=True)
    inserts: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO outbox"):
            inserts.append(statement)

    event.listen(database.engine, "before_cursor_execute", before)
    try:
        Engine(database, clock, batch_size=200).run_until_idle()
    finally:
        event.remove(database.engine, "before_cursor_execute", before)
    assert len(inserts) == 3  # 450 runs in batches of 200
    with database.session() as session:
        rows = session.execute(
            select(OutboxMessage.idempotency_key, OutboxMessage.contact_id, OutboxMessage.status)
        ).all()
        enrolment_of = dict(
            session.execute(
                select(Enrolment.contact_id, Enrolment.id).where(Enrolment.automation_id == a.id)
            ).all()
        )
    assert len(rows) == 450
    for key, contact_id, status in rows:
        assert re.fullmatch(rf"automation:{a.id}:{enrolment_of[contact_id]}:mail:\d+", key)
        assert status == ("queued" if contact_id in subscribed else "refused")
    outcomes = {
        contact: (outcome, detail) for contact, outcome, detail in step_entries(database, "mail")
    }
    assert {outcomes[c] for c in unsubscribed} == {
        ("refused", "status unsubscribed does not allow automation mail")
    }
    assert {outcomes[c][0] for c in subscribed} == {"passed"}
