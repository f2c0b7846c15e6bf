"""Helpers for automation tests."""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy import select

from tidings.activities.models import Activity
from tidings.automations.models import Automation, Enrolment, StepLog
from tidings.automations.service import create_automation
from tidings.clock import FakeClock
from tidings.contacts.models import Contact, ContactTag, Tag
from tidings.contacts.service import ContactInput, upsert_contacts
from tidings.db.engine import Database


def make_contacts(
    database: Database, clock: FakeClock, n: int, *, status: str = "subscribed", prefix: str = "c"
) -> list[int]:
    with database.session() as session:
        report = upsert_contacts(
            session,
            [ContactInput(email=f"{prefix}{i}@example.com", status=status) for i in range(n)],
            now=clock.now(),
            cause="api",
        )
    return report.contact_ids


def automation(database: Database, clock: FakeClock, text: str, **kwargs: Any) -> Automation:
    with database.session() as session:
        return create_automation(session, yaml.safe_load(text), now=clock.now(), **kwargs)


def tags_of(database: Database, contact_id: int) -> set[str]:
    with database.session() as session:
        return set(
            session.scalars(
                select(Tag.name)
                .join(ContactTag, ContactTag.tag_id == Tag.id)
                .where(ContactTag.contact_id == contact_id)
            )
        )


def activities(database: Database, contact_id: int, type_: str) -> list[Activity]:
    with database.session() as session:
        return list(
            session.scalars(
                select(Activity)
                .where(Activity.contact_id == contact_id, Activity.type == type_)
                .order_by(Activity.id)
            )
        )


def enrolments(database: Database, automation_id: int) -> list[Enrolment]:
    with database.session() as session:
        return list(
            session.scalars(
                select(Enrolment)
                .where(Enrolment.automation_id == automation_id)
                .order_by(Enrolment.id)
            )
        )


def contact(database: Database, contact_id: int) -> Contact:
    with database.session() as session:
        found = session.get(Contact, contact_id)
        assert found is not None
        return found


def step_entries(database: Database, step: str) -> list[tuple[int, str, str | None]]:
    """(contact, outcome, detail) of every pass through `step`, from the history rows."""
    with database.session() as session:
        return [
            (log.contact_id, outcome, detail)
            for log in session.scalars(select(StepLog).order_by(StepLog.at, StepLog.id))
            for name, outcome, detail in log.steps
            if name == step
        ]
