"""The hygiene job: delete a segment's contacts with everything of theirs, suppress addresses
or domains, erase one contact (kept only as a hash), an audit row without personal data."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tidings.activities.models import Activity
from tidings.activities.service import record
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact, ContactTag, ListMembership, Suppression
from tidings.contacts.upsert import ContactInput
from tidings.db.engine import Database
from tidings.errors import ValidationFailed
from tidings.jobs import runner
from tidings.jobs.models import HygieneAudit
from tidings.jobs.specs import parse_spec

from .helpers import add_contacts, contact_count, count, run


def test_delete_a_segment_with_tags_memberships_and_events(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    add_contacts(database, clock, 3, tags=["bounced"], lists=["News"])
    add_contacts(database, clock, 2, prefix="keep", tags=["ok"], lists=["News"])
    with database.session() as session:
        record(session, 1, "email_opened", "tracking", clock.now(), {"x": 1})
    spec = {
        "kind": "hygiene",
        "action": "delete",
        "segment": {"has_tag": "bounced"},
        "reason": "bounced 90 days ago",
    }
    done = run(database, clock, settings, spec, requested_by="cli")
    assert done.status == "succeeded" and done.rows_written == 3
    assert contact_count(database) == 2
    assert count(database, ContactTag) == 2 and count(database, ListMembership) == 2
    assert count(database, Activity, Activity.type == "email_opened") == 0
    with database.session() as session:
        deleted = session.scalars(
            select(Activity.data).where(Activity.type == "contact_deleted")
        ).all()
        [audit] = session.scalars(select(HygieneAudit)).all()
    assert deleted == [{}, {}, {}]  # no address kept
    assert (audit.action, audit.requested_by, audit.contacts) == ("delete", "cli", 3)
    assert audit.reason == "bounced 90 days ago"


def test_a_segment_of_every_contact_needs_confirm_all(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    add_contacts(database, clock, 2, tags=["x"])
    spec = {"kind": "hygiene", "action": "delete", "segment": {"has_tag": "x"}, "reason": "r"}
    with database.session() as session, pytest.raises(ValidationFailed, match="confirm_all"):
        runner.check_spec(session, parse_spec(spec), settings=settings, clock=clock)
    refused = run(database, clock, settings, spec)
    assert refused.status == "failed" and "confirm_all" in (refused.detail or "")
    assert contact_count(database) == 2
    done = run(database, clock, settings, {**spec, "confirm_all": True})
    assert done.status == "succeeded" and contact_count(database) == 0


def test_suppress_addresses_and_domains(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    add_contacts(database, clock, 3, tags=["spam"])
    base = {"kind": "hygiene", "segment": {"has_tag": "spam"}, "reason": "traps"}
    addresses = run(database, clock, settings, {**base, "action": "suppress_addresses"})
    assert addresses.rows_written == 3
    domains = run(database, clock, settings, {**base, "action": "suppress_domains"})
    assert domains.rows_written == 1
    with database.session() as session:
        values = set(session.scalars(select(Suppression.value)))
    assert "@example.com" in values and "c1@example.com" in values


def test_erase_keeps_only_a_hash_and_refuses_the_address_again(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    add_contacts(database, clock, 2, tags=["t"], lists=["News"])
    with database.session() as session:
        record(session, 1, "email_opened", "tracking", clock.now(), {})
    spec = {"kind": "hygiene", "action": "erase", "email": "C0@example.com", "reason": "asked"}
    done = run(database, clock, settings, spec)
    assert done.status == "succeeded" and done.rows_written == 1
    with database.session() as session:
        assert session.scalar(select(Contact.id).where(Contact.email == "c0@example.com")) is None
        assert session.scalars(select(Activity).where(Activity.contact_id == 1)).all() == []
        [entry] = session.scalars(
            select(Suppression.value).where(Suppression.value.like("sha256:%"))
        ).all()
        assert "c0" not in entry
        report = contacts.upsert_contacts(
            session, [ContactInput(email="c0@example.com")], now=clock.now(), cause="api"
        )
    assert report.created == 0 and "erased" in report.rejected[0].reason
    bad = run(database, clock, settings, {**spec, "email": "not an address"})
    assert bad.status == "failed" and (bad.detail or "").startswith("email:")
