"""Contacts by status from the ledger the triggers keep (tidings.contacts.status_counts):
right after every way a status changes, and with writers at the same time (both databases)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from sqlalchemy import func, select

from tidings.activities.service import Cause
from tidings.clock import FakeClock
from tidings.contacts import service as contacts
from tidings.contacts import status_counts
from tidings.contacts.erasure import erase_contact
from tidings.contacts.importer import import_contacts
from tidings.contacts.models import Contact
from tidings.contacts.policy import ContactStatus
from tidings.contacts.upsert import ContactInput
from tidings.contacts.writes import delete_contacts, set_status
from tidings.db.engine import Database


def _truth(database: Database) -> list[tuple[str, int]]:
    with database.session() as session:
        rows = session.execute(
            select(Contact.status, func.count()).group_by(Contact.status).order_by(Contact.status)
        )
        return [(status, int(n)) for status, n in rows]


def _ledger(database: Database) -> list[tuple[str, int]]:
    with database.session() as session:
        return status_counts.by_status(session)[0]


def _id(database: Database, email: str) -> int:
    with database.session() as session:
        return int(session.scalars(select(Contact.id).where(Contact.email == email)).one())


def test_every_status_change_keeps_the_counts(
    database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    now, cause = clock.now(), Cause.API

    def step() -> None:
        assert _ledger(database) == _truth(database)

    with database.session() as session:  # upsert: new contacts, then a status given again
        contacts.upsert_contacts(
            session,
            [ContactInput(email=f"p{i}@example.com") for i in range(6)]
            + [ContactInput(email="u@example.com", status="unsubscribed")],
            now=now,
            cause=cause,
        )
        contacts.upsert_contacts(
            session,
            [ContactInput(email="p0@example.com", status="unsubscribed")],
            now=now,
            cause=cause,
        )
    step()
    assert _ledger(database) == [("subscribed", 5), ("unsubscribed", 2)]
    csv = b"email,first_name\nimp1@example.com,A\nimp2@example.com,B\np1@example.com,C\n"
    import_contacts(
        database,
        io.BufferedReader(io.BytesIO(csv)),
        clock=clock,  # type: ignore[arg-type]
        rejected_path=tmp_path / "r.csv",
        status="pending",
    )
    step()
    ids = {
        email: _id(database, f"{email}@example.com") for email in ("p2", "p3", "p4", "imp1", "imp2")
    }
    with database.session() as session:  # unsubscribe, bounce (the bounce path's write)
        contacts.change_status(
            session,
            contacts.get_contact(session, ids["p2"]),
            ContactStatus.UNSUBSCRIBED,
            now=now,
            cause=cause,
        )
        contacts.change_status(
            session,
            contacts.get_contact(session, ids["p3"]),
            ContactStatus.BOUNCED,
            now=now,
            cause=Cause.TRACKING,
            reason="550",
        )
        set_status(  # a bulk action over several at once
            session,
            [ids["imp1"], ids["imp2"]],
            ContactStatus.SUBSCRIBED,
            cause=cause,
            now=now,
        )
    step()
    with database.session() as session:  # delete, hygiene (anonymous), erasure
        contacts.delete_contact(
            session,
            contacts.get_contact(session, ids["p4"]),
            now=now,
            cause=cause,
        )
        delete_contacts(session, [ids["p3"]], cause=cause, now=now, anonymous=True)
        erase_contact(session, "u@example.com", now=now, cause=cause)
    step()
    truth = _truth(database)
    with database.session() as session:
        status_counts.fold(session)
        counts, entries = status_counts.by_status(session)
    assert counts == truth and entries <= len(ContactStatus)  # one row per status at most


def test_concurrent_writers_count_right(database: Database, clock: FakeClock) -> None:
    """Writers inserting and changing statuses at once neither wait on one counter row for
    long nor lose a change; folding meanwhile loses nothing either."""
    now, errors = clock.now(), []

    def writer(n: int) -> None:
        try:
            for batch in range(5):
                with database.session() as session:
                    report = contacts.upsert_contacts(
                        session,
                        [ContactInput(email=f"w{n}-{batch}-{i}@example.com") for i in range(20)],
                        now=now,
                        cause=Cause.API,
                    )
                    set_status(
                        session,
                        report.contact_ids[:5],
                        ContactStatus.UNSUBSCRIBED,
                        cause=Cause.API,
                        now=now,
                    )
                with database.session() as session:
                    status_counts.fold(session)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _ledger(database) == _truth(database) == [("subscribed", 225), ("unsubscribed", 75)]
