"""Concurrent writers never fail on the names they both create."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from tidings.clock import FakeClock
from tidings.contacts import service
from tidings.contacts.models import ContactTag, Tag
from tidings.db.engine import Database


def test_two_transactions_creating_the_same_new_tag_both_succeed(
    database: Database, clock: FakeClock
) -> None:
    with database.session() as session:
        report = service.upsert_contacts(
            session,
            [service.ContactInput(email=f"c{i}@example.com") for i in range(8)],
            now=clock.now(),
            cause="api",
        )
    barrier = threading.Barrier(len(report.contact_ids))
    errors: list[BaseException] = []

    def tag(contact_id: int) -> None:
        try:
            barrier.wait(timeout=10)
            with database.session() as session:
                contact = service.get_contact(session, contact_id)
                service.add_tag(session, contact, "Launch", now=clock.now(), cause="api")
                service.ensure_lists(session, ["Launch list"], clock.now())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=tag, args=(cid,)) for cid in report.contact_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Tag)) == 1
        assert session.scalar(select(func.count()).select_from(ContactTag)) == 8
