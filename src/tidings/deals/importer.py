"""CSV import and export of deals (the export's columns are what the import reads).

A row with an `id` updates that deal (an export imported again changes nothing); a row
without one creates a deal. Pipelines, stages, owners and contacts are named as people name
them: pipeline name, stage title, user and contact email addresses; contacts must exist
(import them first with `tidings contacts import`). An empty cell leaves the value as it is.
Bad rows are written beside the file with their line and reason; the rest is imported, one
transaction per batch.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.clock import Clock
from tidings.contacts.csvfile import (
    MULTI_SEPARATOR,
    Record,
    RejectedWriter,
    batches,
    cell,
    column_keys,
    read_records,
)
from tidings.contacts.emails import InvalidEmail, normalize_email
from tidings.contacts.models import Contact
from tidings.contacts.repository import ids_by_email
from tidings.db.bulk import in_values
from tidings.db.engine import Database
from tidings.deals.fields import field_definitions
from tidings.deals.models import Deal, Pipeline, Stage, User
from tidings.deals.repository import pairs
from tidings.deals.service import (
    DealChange,
    create_deals,
    further_contacts,
    update_deals,
)
from tidings.deals.validation import DealInput, DealState, Lookups, resolve
from tidings.errors import TidingsError, ValidationFailed
from tidings.memory import gc_paused

BATCH_SIZE = 2_000
COLUMNS = (
    "id",
    "title",
    "value",
    "currency",
    "pipeline",
    "stage",
    "status",
    "owner",
    "contact",
    "contacts",
    "expected_close",
    "closed_at",
    "lost_reason",
    "description",
)
READ_ONLY = ("score", "created_at", "updated_at")  # exported for people, ignored on import


@dataclass(slots=True)
class DealImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejected_file: Path | None = None
    samples: list[str] = field(default_factory=list)


class RowError(Exception):
    pass


def _plan(header: list[str], custom: set[str]) -> list[str]:
    keys = column_keys(header)
    if "title" not in keys and "id" not in keys:
        raise ValidationFailed("header: no 'title' column (or 'id' column, to update deals)")
    unknown = [
        h
        for h, k in zip(header, keys, strict=True)
        if k not in (*COLUMNS, *READ_ONLY) and k not in custom
    ]
    if unknown:
        raise ValidationFailed(
            f"header: unknown column(s) {', '.join(map(repr, unknown))}; columns are "
            f"{', '.join(COLUMNS)}, deal fields: {', '.join(sorted(custom)) or 'none defined'}"
        )
    return keys


def _id(text: str) -> int | None:
    text = text.strip()
    usable = text.isascii() and text.isdigit() and len(text) <= 19
    return int(text) if usable and 0 < int(text) < 2**63 else None


def _emails(text: str, what: str) -> list[str]:
    out = []
    for part in text.split(MULTI_SEPARATOR):
        if part.strip():
            try:
                out.append(normalize_email(part))
            except InvalidEmail as exc:
                raise RowError(f"{what}: {exc.detail}") from None
    return out


class _Names:
    """Pipelines, stages and users by the names a file uses (all small tables)."""

    def __init__(self, session: Session) -> None:
        self.pipelines = {p.name: p.id for p in session.scalars(select(Pipeline))}
        self.stages = {(s.pipeline_id, s.title): s.id for s in session.scalars(select(Stage))}
        self.users = {u.email: u.id for u in session.scalars(select(User))}


def _read(
    values: dict[str, str], names: _Names, contacts: dict[str, int], current: Deal | None
) -> DealInput:
    """A DealInput from one row's non-empty cells."""
    item = DealInput()

    def put(name: str, value: Any) -> None:
        item.given.add(name)
        setattr(item, name, value)

    if values.get("title"):
        put("title", values["title"])
    if values.get("description"):
        put("description", values["description"])
    if values.get("value"):
        try:
            put("value", int(values["value"].strip()))
        except ValueError:
            raise RowError(
                f"value: {values['value']!r} is not a whole number of minor units"
            ) from None
    if values.get("currency"):
        put("currency", values["currency"])
    pipeline_id = current.pipeline_id if current else None
    if values.get("pipeline"):
        name = values["pipeline"].strip()
        if name not in names.pipelines:
            raise RowError(f"pipeline: {name!r} does not exist")
        pipeline_id = names.pipelines[name]
        put("pipeline_id", pipeline_id)
    if values.get("stage"):
        title = values["stage"].strip()
        if pipeline_id is None:
            raise RowError("stage: name the pipeline too")
        stage_id = names.stages.get((pipeline_id, title))
        if stage_id is None:
            raise RowError(f"stage: the pipeline has no stage {title!r}")
        put("stage_id", stage_id)
    if values.get("status"):
        put("status", values["status"])
    if values.get("owner"):
        (owner,) = _emails(values["owner"], "owner") or [""]
        if owner not in names.users:
            raise RowError(f"owner: no user with email {owner}")
        put("owner_id", names.users[owner])
    if values.get("contact"):
        (email,) = _emails(values["contact"], "contact") or [""]
        if email not in contacts:
            raise RowError(f"contact: {email} does not exist (import contacts first)")
        put("contact_id", contacts[email])
    if values.get("contacts"):
        further = []
        for email in _emails(values["contacts"], "contacts"):
            if email not in contacts:
                raise RowError(f"contacts: {email} does not exist (import contacts first)")
            further.append(contacts[email])
        put("contact_ids", further)
    if values.get("expected_close"):
        try:
            put("expected_close", date.fromisoformat(values["expected_close"].strip()))
        except ValueError:
            raise RowError("expected_close: expected a date YYYY-MM-DD") from None
    if values.get("closed_at"):
        try:
            put("closed_at", datetime.fromisoformat(values["closed_at"].strip()))
        except ValueError:
            raise RowError("closed_at: expected a time like 2026-01-01T09:00:00+00:00") from None
    if values.get("lost_reason"):
        put("lost_reason", values["lost_reason"])
    custom = {
        k: v for k, v in values.items() if k not in COLUMNS and k not in READ_ONLY and v != ""
    }
    if custom:
        put("fields", custom)
    return item


def import_deals(
    database: Database,
    stream: BinaryIO,
    *,
    clock: Clock,
    rejected_path: Path,
    encoding: str = "utf-8",
    batch_size: int = BATCH_SIZE,
    cause: str = Cause.IMPORT,
    progress: Callable[[int], None] | None = None,
) -> DealImportSummary:
    header, records = read_records(stream, encoding, expected="a 'title' column")
    with database.session() as session:
        custom = set(field_definitions(session))
    keys = _plan(header, custom)
    summary = DealImportSummary()
    writer = RejectedWriter(rejected_path, header)
    try:
        for batch in batches(records, batch_size):
            with gc_paused(), database.session() as session:
                _import_batch(session, batch, keys, summary, writer, clock.now(), cause)
            writer.flush()
            if progress:
                progress(len(batch))
    finally:
        writer.close()
    if summary.rejected:
        summary.rejected_file = rejected_path
    return summary


def _import_batch(
    session: Session,
    batch: Sequence[Record],
    keys: list[str],
    summary: DealImportSummary,
    writer: RejectedWriter,
    now: datetime,
    cause: str,
) -> None:
    def reject(record: Record, reason: str) -> None:
        writer.write(record.line, record.shown, reason)
        summary.rejected += 1
        if len(summary.samples) < 5:
            summary.samples.append(reason)

    rows: list[tuple[Record, dict[str, str]]] = []
    for record in batch:
        if record.values is None:
            reject(record, record.error or f"line {record.line}: unreadable")
        else:
            rows.append((record, dict(zip(keys, record.values, strict=True))))
    names = _Names(session)
    emails: list[str] = []
    ids: list[int] = []
    for _, values in rows:
        for column in ("contact", "contacts"):
            with suppress(RowError):  # reported with its row below
                emails.extend(_emails(values.get(column, ""), column))
        deal_id = _id(values.get("id", ""))
        if deal_id is not None:
            ids.append(deal_id)
    contacts = ids_by_email(session, sorted(set(emails)))
    existing = {
        d.id: d for d in session.scalars(select(Deal).where(in_values(session, Deal.id, ids)))
    }
    further = further_contacts(session, list(existing))
    lookups = Lookups.load(session, contacts.values())
    creates: list[DealState] = []
    changes: list[DealChange] = []
    for record, values in rows:
        current = None
        raw_id = values.get("id", "").strip()
        try:
            if raw_id:
                current = existing.get(_id(raw_id) or 0)
                if current is None:
                    raise RowError(f"id: deal {raw_id} does not exist (leave id empty to create)")
            item = _read(values, names, contacts, current)
            if current is None:
                creates.append(resolve(item, None, lookups, now=now))
            else:
                old = DealState.of(current, further.get(current.id, []))
                changes.append(DealChange(current, old, resolve(item, old, lookups, now=now)))
        except RowError as exc:
            reject(record, f"line {record.line}: {exc}")
        except TidingsError as exc:
            reject(record, f"line {record.line}: {exc.detail}")
    create_deals(session, creates, now=now, cause=cause)
    summary.created += len(creates)
    changed = update_deals(session, changes, now=now, cause=cause)
    summary.updated += changed
    summary.unchanged += len(changes) - changed


EXPORT_PAGE = 2_000


def export_deals(database: Database, out: Any, *, pipeline_id: int | None = None) -> int:
    """Write deals as CSV in the columns import_deals reads; returns the count."""
    with database.session() as session:
        names = _Names(session)
        custom = sorted(field_definitions(session))
    pipeline_names = {i: n for n, i in names.pipelines.items()}
    stage_titles = {i: title for (_, title), i in names.stages.items()}
    user_emails = {i: e for e, i in names.users.items()}
    writer = csv.writer(out)
    writer.writerow([*COLUMNS, *READ_ONLY, *custom])
    count, after = 0, 0
    while True:
        with database.session() as session:
            query = select(Deal).where(Deal.id > after)
            if pipeline_id is not None:
                query = query.where(Deal.pipeline_id == pipeline_id)
            deals = list(session.scalars(query.order_by(Deal.id).limit(EXPORT_PAGE)))
            if not deals:
                return count
            further = further_contacts(session, [d.id for d in deals])
            wanted = {c for d in deals for c in [d.contact_id, *further.get(d.id, [])] if c}
            emails = pairs(
                session,
                select(Contact.id, Contact.email).where(
                    in_values(session, Contact.id, list(wanted))
                ),
            )
        for d in deals:
            writer.writerow(
                [
                    d.id,
                    d.title,
                    d.value,
                    d.currency,
                    pipeline_names.get(d.pipeline_id, ""),
                    stage_titles.get(d.stage_id, ""),
                    d.status,
                    user_emails.get(d.owner_id, "") if d.owner_id else "",
                    emails.get(d.contact_id, "") if d.contact_id else "",
                    MULTI_SEPARATOR.join(emails[c] for c in further.get(d.id, []) if c in emails),
                    d.expected_close.isoformat() if d.expected_close else "",
                    d.closed_at.isoformat() if d.closed_at else "",
                    d.lost_reason or "",
                    d.description or "",
                    d.score,
                    d.created_at.isoformat(),
                    d.updated_at.isoformat(),
                    *(cell((d.fields or {}).get(k)) for k in custom),
                ]
            )
        count += len(deals)
        after = deals[-1].id
