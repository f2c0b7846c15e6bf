"""Contacts, a template and job runs in a few lines, for the job tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact
from tidings.contacts.upsert import ContactInput
from tidings.db.engine import Database
from tidings.jobs import runner
from tidings.jobs.models import JobRun
from tidings.jobs.specs import parse_spec
from tidings.messaging.service import create_template


def add_contacts(
    database: Database, clock: FakeClock, count: int, *, prefix: str = "c", **kw: Any
) -> None:
    """`count` contacts c0@example.com... (with `kw`: tags, lists, status, first_name)."""
    items = [ContactInput(email=f"{prefix}{i}@example.com", **kw) for i in range(count)]
    with database.session() as session:
        contacts.upsert_contacts(session, items, now=clock.now(), cause="import")


def add_template(database: Database, clock: FakeClock, name: str = "news") -> None:
    with database.session() as session:
        create_template(
            session,
            name=name,
            now=clock.now(),
            subject="News",
            html="<p>Hi</p>",
            text="Hi",
            variables={},
            track_opens=False,
            track_clicks=False,
        )


def run(
    database: Database, clock: FakeClock, settings: Settings, spec: dict[str, Any], **kw: Any
) -> JobRun:
    return runner.run_job(database, parse_spec(spec), clock=clock, settings=settings, **kw)


def count(database: Database, model: Any, *where: Any) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def contact_count(database: Database) -> int:
    return count(database, Contact)


def finished_events(database: Database) -> list[dict[str, Any]]:
    with database.session() as session:
        return [
            a.data
            for a in session.scalars(
                select(Activity).where(Activity.type == "job_finished").order_by(Activity.id)
            )
        ]
