"""Ingesting engagement events: validate, resolve contacts, store, keep summaries exact.

Events are activity rows (one log for contact changes and events, so automations trigger on
both). A batch is written set-wise: one executemany for the events, one for the contact
summaries (`apply_engagement` of the contacts write API: relative UPDATEs, so concurrent
batches add up exactly), one upsert per (day, type) for the daily aggregates. Invalid events
are reported with their index; the rest are stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

import orjson
from sqlalchemy import ColumnElement, Table, delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.activities.service import mark_activities_written
from tidings.contacts import repository as contacts_repository
from tidings.contacts import service as contacts_service
from tidings.contacts.emails import InvalidEmail, normalize_email
from tidings.contacts.models import Contact
from tidings.contacts.policy import ContactStatus
from tidings.contacts.service import Engagement
from tidings.db.bulk import dialect_insert, in_values, insert_tuples
from tidings.db.dialect import dialect_of
from tidings.db.engine import use_bulk_page_cache
from tidings.db.types import stored_time
from tidings.events.models import EventDaily
from tidings.events.validation import (
    BUILTIN_TYPES,
    CUSTOM_PREFIX,
    EMAIL_OPENED,
    LINK_CLICKED,
    MAX_FUTURE,
    PURCHASE,
    SITE_VISIT,
    CheckedEvent,
    EventError,
    check_event,
)
from tidings.memory import gc_paused

MAX_BATCH = 50_000
ACTIVITIES = cast(Table, Activity.__table__)
DAILY = cast(Table, EventDaily.__table__)
EVENT_COLUMNS = ("contact_id", "type", "cause", "occurred_at", "data", "event_id", "machine")
# Contacts an unknown email creates (create_contacts=true) have not opted in to campaigns.
CREATED_STATUS = ContactStatus.TRANSACTIONAL


@dataclass(slots=True)
class RejectedEvent:
    index: int
    reason: str


@dataclass(slots=True)
class IngestReport:
    stored: int = 0
    duplicates: int = 0
    created_contacts: int = 0
    rejected: list[RejectedEvent] = field(default_factory=list)

    def merge(self, other: IngestReport) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.created_contacts += other.created_contacts
        self.rejected.extend(other.rejected)


def event_type_condition(column: Any = Activity.type) -> ColumnElement[bool]:
    """Activity rows that are engagement events (what `prune` may remove)."""
    return or_(column.in_(sorted(BUILTIN_TYPES)), column.like(CUSTOM_PREFIX + "%"))


def ingest_events(
    session: Session,
    events: Sequence[Any],
    *,
    now: datetime,
    cause: str,
    create_contacts: bool = False,
    index_offset: int = 0,
) -> IngestReport:
    """Store valid events (dicts as sent to the API); report invalid ones with index and reason.

    `events` may contain `BadLine` items (input lines that were not JSON objects): they are
    rejected with their reason, keeping the indexes of the rest right.
    """
    with gc_paused():  # tens of thousands of small objects that live until the end
        return _ingest(session, events, now, cause, create_contacts, index_offset)


def _ingest(
    session: Session,
    events: Sequence[Any],
    now: datetime,
    cause: str,
    create_contacts: bool,
    index_offset: int,
) -> IngestReport:
    report = IngestReport()
    checked: list[tuple[int, CheckedEvent]] = []
    latest = now + MAX_FUTURE
    for position, raw in enumerate(events):
        try:
            checked.append((position + index_offset, check_event(raw, now, latest)))
        except EventError as exc:
            report.rejected.append(RejectedEvent(position + index_offset, str(exc)))
    checked = _resolve_contacts(session, checked, report, now, create_contacts)
    store = dialect_of(session).pick(sqlite=_sqlite_store, postgresql=_postgres_store)
    stored = store(session, checked, cause, report)
    contacts_service.apply_engagement(session, _summaries(stored))
    _update_daily(session, stored)
    report.rejected.sort(key=lambda r: r.index)
    return report


def _resolve_contacts(
    session: Session,
    checked: list[tuple[int, CheckedEvent]],
    report: IngestReport,
    now: datetime,
    create_contacts: bool,
) -> list[tuple[int, CheckedEvent]]:
    ids = {e.contact_id for _, e in checked if e.contact_id is not None}
    existing: set[int] = set()
    if ids:
        existing = set(
            session.scalars(select(Contact.id).where(in_values(session, Contact.id, list(ids))))
        )
    emails: dict[str, int] = {}
    normalized: dict[int, str] = {}
    for index, event in checked:
        if event.contact_id is None and event.email is not None:
            try:
                normalized[index] = normalize_email(event.email)
            except InvalidEmail as exc:
                normalized[index] = ""
                report.rejected.append(RejectedEvent(index, f"email: {exc.detail}"))
    wanted = sorted({e for e in normalized.values() if e})
    if wanted:
        emails = contacts_repository.ids_by_email(session, wanted)
        missing = [e for e in wanted if e not in emails]
        if missing and create_contacts:
            created = contacts_service.upsert_contacts(
                session,
                [contacts_service.ContactInput(email=e) for e in missing],
                now=now,
                cause="api",
                default_status=CREATED_STATUS,
            )
            report.created_contacts += created.created
            emails.update(contacts_repository.ids_by_email(session, missing))
    kept: list[tuple[int, CheckedEvent]] = []
    for index, event in checked:
        if event.contact_id is not None:
            if event.contact_id not in existing:
                report.rejected.append(
                    RejectedEvent(index, f"contact_id: contact {event.contact_id} does not exist")
                )
                continue
        else:
            email = normalized.get(index, "")
            if not email:
                continue  # already rejected for its address
            found = emails.get(email)
            if found is None:
                report.rejected.append(
                    RejectedEvent(
                        index,
                        f"email: no contact with address {email} (send create_contacts=true "
                        "to create it)",
                    )
                )
                continue
            event.contact_id = found
        kept.append((index, event))
    return kept


def _drop_duplicates(
    session: Session,
    checked: list[tuple[int, CheckedEvent]],
    report: IngestReport,
    *,
    in_database: bool = True,
) -> list[tuple[int, CheckedEvent]]:
    keys = [e.event_id for _, e in checked if e.event_id is not None]
    if not keys:
        return checked
    seen: set[str | None] = set()
    if in_database:
        seen.update(
            session.scalars(
                select(Activity.event_id).where(
                    in_values(session, Activity.event_id, sorted(set(keys)))
                )
            )
        )
    kept = []
    for index, event in checked:
        if event.event_id is not None:
            if event.event_id in seen:
                report.duplicates += 1
                continue
            seen.add(event.event_id)
        kept.append((index, event))
    return kept


def _row(event: CheckedEvent, cause: str) -> tuple[Any, ...]:
    return (
        event.contact_id,
        event.type,
        cause,
        event.occurred_at,
        event.data,
        event.event_id,
        event.machine,
    )


_SQLITE_INSERT = (
    f"INSERT INTO activities ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
)
_SQLITE_INSERT_IGNORE = _SQLITE_INSERT.replace("INSERT INTO", "INSERT OR IGNORE INTO")


def _sqlite_insert(
    driver: Any, events: list[CheckedEvent], cause: str, *, ignore: bool = False
) -> int:
    """Driver-level executemany with values already in their stored form (the hot path)."""
    dumps = orjson.dumps
    rows = [
        (
            e.contact_id,
            e.type,
            cause,
            stored_time(e.occurred_at),
            dumps(e.data).decode(),
            e.event_id,
            e.machine,
        )
        for e in events
    ]
    cursor = driver.cursor()
    try:
        cursor.executemany(_SQLITE_INSERT_IGNORE if ignore else _SQLITE_INSERT, rows)
        return int(cursor.rowcount)
    finally:
        cursor.close()


def _sqlite_store(
    session: Session, checked: list[tuple[int, CheckedEvent]], cause: str, report: IngestReport
) -> list[CheckedEvent]:
    """SQLite holds the write lock from BEGIN IMMEDIATE, so nobody inserts meanwhile.

    Keys already stored are rare, so the batch goes in with INSERT OR IGNORE (duplicates inside
    the batch dropped beforehand) instead of looking every key up first. If fewer rows went in
    than were sent, the rows this statement inserted are exactly those with an id above the
    previous maximum (SQLite gives new rows max(id) + 1): every other keyed event was a
    duplicate.
    """
    fresh = _drop_duplicates(session, checked, report, in_database=False)
    events = [event for _, event in fresh]
    if not events:
        return []
    use_bulk_page_cache(session)  # four indexes on a growing table
    driver = session.connection().connection.driver_connection
    assert driver is not None
    (before,) = driver.execute("SELECT coalesce(max(id), 0) FROM activities").fetchone()
    inserted = _sqlite_insert(driver, events, cause, ignore=True)
    stored = events
    if inserted != len(events):
        new_keys = {
            key
            for (key,) in driver.execute(
                "SELECT event_id FROM activities WHERE id > ? AND event_id IS NOT NULL",
                (before,),
            )
        }
        stored = [e for e in events if e.event_id is None or e.event_id in new_keys]
        report.duplicates += len(events) - len(stored)
    report.stored += len(stored)
    if stored:
        mark_activities_written(session)
    return stored


def _postgres_store(
    session: Session, checked: list[tuple[int, CheckedEvent]], cause: str, report: IngestReport
) -> list[CheckedEvent]:
    """Insert the events; returns those actually stored.

    Keys already stored are dropped by one lookup first; a key another transaction stores at
    the same moment is settled by the unique constraint (ON CONFLICT DO NOTHING RETURNING), so
    only what this statement inserted is counted.
    """
    events = [event for _, event in _drop_duplicates(session, checked, report)]
    if not events:
        return []
    table = ACTIVITIES
    plain = [e for e in events if e.event_id is None]
    # Sorted by key: two batches sharing keys wait on each other in one order (no deadlock).
    keyed = sorted((e for e in events if e.event_id is not None), key=lambda e: e.event_id or "")
    insert_tuples(session, table, EVENT_COLUMNS, [_row(e, cause) for e in plain])
    stored = plain
    if keyed:
        statement = (
            pg_insert(table)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(table.c.event_id)
        )
        rows = [dict(zip(EVENT_COLUMNS, _row(e, cause), strict=True)) for e in keyed]
        inserted = set(session.connection().execute(statement, rows).scalars())
        report.duplicates += len(keyed) - len(inserted)
        stored = stored + [e for e in keyed if e.event_id in inserted]
    report.stored += len(stored)
    if stored:
        mark_activities_written(session)
    return stored


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _summaries(events: list[CheckedEvent]) -> dict[int, Engagement]:
    """Per contact, what this batch adds. Machine opens/clicks are not engagement."""
    out: dict[int, Engagement] = {}
    for event in events:
        if event.machine or event.contact_id is None:
            continue
        kind = event.type
        if kind == EMAIL_OPENED:
            s = out.setdefault(event.contact_id, Engagement())
            s.opens += 1
            s.last_open = _later(s.last_open, event.occurred_at)
        elif kind == LINK_CLICKED:
            s = out.setdefault(event.contact_id, Engagement())
            s.clicks += 1
            s.last_click = _later(s.last_click, event.occurred_at)
        elif kind == PURCHASE:
            s = out.setdefault(event.contact_id, Engagement())
            s.purchases += 1
            s.amount_minor += event.amount_minor
            s.last_purchase = _later(s.last_purchase, event.occurred_at)
        elif kind == SITE_VISIT:
            s = out.setdefault(event.contact_id, Engagement())
            s.visits += 1
            s.last_visit = _later(s.last_visit, event.occurred_at)
    return out


def _update_daily(session: Session, events: list[CheckedEvent]) -> None:
    """Add this batch to the per-day aggregates (they survive `prune`)."""
    if not events:
        return
    totals: dict[tuple[date, str], list[int]] = {}
    for event in events:
        key = (event.occurred_at.date(), event.type)
        row = totals.get(key)
        if row is None:
            row = totals[key] = [0, 0, 0]
        row[0] += 1
        row[1] += event.machine
        row[2] += event.amount_minor
    connection = session.connection()
    table = DAILY
    statement = dialect_insert(session, table)
    statement = statement.on_conflict_do_update(
        index_elements=["day", "type"],
        set_={
            "events": table.c.events + statement.excluded.events,
            "machine_events": table.c.machine_events + statement.excluded.machine_events,
            "amount_minor": table.c.amount_minor + statement.excluded.amount_minor,
        },
    )
    # Sorted, so concurrent batches take the aggregate rows' locks in the same order.
    for (day, kind), (count, machine, amount) in sorted(totals.items()):
        connection.execute(
            statement,
            {
                "day": day,
                "type": kind,
                "events": count,
                "machine_events": machine,
                "amount_minor": amount,
            },
        )


def prune_events(session: Session, before: datetime, *, limit: int = 10_000) -> int:
    """Delete up to `limit` raw events older than `before`; returns how many.

    Contact changes (tags, lists, status...) are history, not events, and are never pruned.
    Summaries on contacts and the daily aggregates were counted at ingest and stay as they are.
    """
    doomed = (
        select(Activity.id)
        .where(event_type_condition(), Activity.occurred_at < before)
        .limit(limit)
    )
    result = session.execute(delete(Activity).where(Activity.id.in_(doomed)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
