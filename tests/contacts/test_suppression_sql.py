"""The SQL suppression condition (used by broadcasts and the sender) matches exactly the
addresses and whole domains listed, like `is_suppressed` does in Python."""

from __future__ import annotations

from sqlalchemy import select

from tests.messaging.helpers import make_contact
from tidings.clock import FakeClock
from tidings.contacts.models import Contact, Suppression
from tidings.contacts.repository import is_suppressed, suppressed_condition
from tidings.db.engine import Database

ADDRESSES = [
    "ann@example.com",
    "ann@sub.example.com",
    "x@notexample.com",
    "bob@other.org",
    "carl@other.org",
]


def test_address_and_domain_entries(database: Database, clock: FakeClock) -> None:
    with database.session() as session:
        for value in ("@example.com", "bob@other.org"):
            session.add(Suppression(value=value, created_at=clock.now()))
        for email in ADDRESSES:
            make_contact(session, email, clock.now())
    with database.session() as session:
        found = set(
            session.scalars(select(Contact.email).where(suppressed_condition(Contact.email)))
        )
        assert found == {"ann@example.com", "bob@other.org"}
        assert found == {email for email in ADDRESSES if is_suppressed(session, email)}
