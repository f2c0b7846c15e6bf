"""CSV import and export of contacts: streamed in batches, idempotent, rejected rows reported."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import ColumnElement, select

from tidings.activities.service import Cause
from tidings.clock import Clock
from tidings.contacts import repository
from tidings.contacts.csvfile import (
    MULTI_SEPARATOR,
    Record,
    RejectedWriter,
    batches,
    cell,
    column_keys,
    read_records,
)
from tidings.contacts.fields import FieldDef
from tidings.contacts.models import Contact, ContactTag, ListMembership, MailingList, Tag
from tidings.contacts.policy import ContactStatus
from tidings.contacts.upsert import (
    ContactInput,
    UpsertReport,
    ValidatedBatch,
    validate_batch,
    write_contacts,
)
from tidings.db.engine import Database
from tidings.errors import ValidationFailed
from tidings.memory import gc_paused

BATCH_SIZE = 5_000
# score and created_at are what exports write: kept for new contacts, ignored for existing ones.
STANDARD_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "status",
    "score",
    "tags",
    "lists",
    "created_at",
)
PROFILE_COLUMNS = ("first_name", "last_name", "phone")


@dataclass(slots=True)
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    kept_status: int = 0
    rejected_file: Path | None = None
    rows: int = 0
    samples: list[str] = field(default_factory=list)


def _plan_columns(header: list[str], definitions: dict[str, FieldDef]) -> list[str]:
    keys = column_keys(header)
    if "email" not in keys:
        raise ValidationFailed("header: no 'email' column")
    unknown = [
        h
        for h, k in zip(header, keys, strict=True)
        if k not in STANDARD_COLUMNS and k not in definitions
    ]
    if unknown:
        known = ", ".join(sorted(definitions)) or "none defined"
        raise ValidationFailed(
            f"header: unknown column(s) {', '.join(map(repr, unknown))}; standard columns are "
            f"{', '.join(STANDARD_COLUMNS)}, custom fields: {known}"
        )
    return keys


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(MULTI_SEPARATOR) if part.strip()]


@dataclass(frozen=True, slots=True)
class _RowReader:
    """Where each kind of column sits in a row, worked out once per file."""

    email: int
    profile: tuple[tuple[str, int], ...]
    status: int | None
    tags: int | None
    lists: int | None
    score: int | None
    created_at: int | None
    fields: tuple[tuple[str, int], ...]

    @classmethod
    def for_columns(cls, keys: list[str]) -> _RowReader:
        where = {key: index for index, key in enumerate(keys)}
        return cls(
            email=where["email"],
            profile=tuple(
                (k, where[k]) for k in ("first_name", "last_name", "phone") if k in where
            ),
            status=where.get("status"),
            tags=where.get("tags"),
            lists=where.get("lists"),
            score=where.get("score"),
            created_at=where.get("created_at"),
            fields=tuple((k, i) for k, i in where.items() if k not in STANDARD_COLUMNS),
        )

    def read(self, values: list[str]) -> ContactInput:
        item = ContactInput(
            email=values[self.email],
            # An empty cell leaves the existing value as it is.
            fields={key: values[i] for key, i in self.fields if values[i] != ""},
        )
        for attribute, index in self.profile:
            if values[index].strip():
                setattr(item, attribute, values[index])
        if self.status is not None:
            item.status = values[self.status].strip().lower() or None
        if self.tags is not None:
            item.tags = _split(values[self.tags])
        if self.lists is not None:
            item.lists = _split(values[self.lists])
        if self.score is not None:
            item.score = values[self.score].strip() or None
        if self.created_at is not None:
            item.created_at = values[self.created_at].strip() or None
        return item


def import_contacts(
    database: Database,
    stream: BinaryIO,
    *,
    clock: Clock,
    rejected_path: Path,
    list_name: str | None = None,
    tag: str | None = None,
    status: str = ContactStatus.SUBSCRIBED,
    encoding: str = "utf-8",
    batch_size: int = BATCH_SIZE,
    force_resubscribe: bool = False,
    reason: str | None = None,
    cause: str = Cause.IMPORT,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import contacts from CSV, one transaction per batch.

    Batches are idempotent, so an interrupted import is finished by running it again.
    """
    status = ContactStatus(status).value
    header, records = read_records(stream, encoding)
    with database.session() as session:
        definitions = repository.field_definitions(session)
    row_reader = _RowReader.for_columns(_plan_columns(header, definitions))
    summary = ImportSummary()
    writer = RejectedWriter(rejected_path, header)
    extra_tags = [tag] if tag else []
    extra_lists = [list_name] if list_name else []

    def write(batch: ValidatedBatch) -> UpsertReport:
        with database.session() as session:
            return write_contacts(
                session,
                batch,
                now=clock.now(),
                cause=cause,
                default_status=status,
                force_resubscribe=force_resubscribe,
                reason=reason,
            )

    try:
        for records_batch in batches(records, batch_size):
            with gc_paused():  # a batch's many small objects live until it is written
                good = [r for r in records_batch if r.values is not None]
                validated = validate_batch(
                    [row_reader.read(r.values or []) for r in good],
                    definitions,
                    extra_tags=extra_tags,
                    extra_lists=extra_lists,
                )
                _finish(summary, write(validated), records_batch, writer, progress)
    finally:
        writer.close()
    if summary.rejected:
        summary.rejected_file = rejected_path
    return summary


def _finish(
    summary: ImportSummary,
    report: UpsertReport,
    records: list[Record],
    writer: RejectedWriter,
    progress: Callable[[int], None] | None,
) -> None:
    """Report a written batch's rows, in file order."""
    for record in records:
        if record.values is None:
            writer.write(record.line, record.shown, record.error or "unreadable")
            summary.rejected += 1
    _account(summary, report, [r for r in records if r.values is not None], writer)
    writer.flush()
    summary.rows += len(records)
    if progress:
        progress(len(records))


def _account(
    summary: ImportSummary, report: UpsertReport, good: list[Record], writer: RejectedWriter
) -> None:
    summary.created += report.created
    summary.updated += report.updated
    summary.unchanged += report.unchanged
    summary.kept_status += len(report.kept_status)
    for rejection in report.rejected:
        record = good[rejection.index]
        writer.write(record.line, record.values, f"line {record.line}: {rejection.reason}")
        summary.rejected += 1
        if len(summary.samples) < 5:
            summary.samples.append(f"line {record.line}: {rejection.reason}")


EXPORT_PAGE = 5_000


def export_contacts(
    database: Database,
    out: Any,
    *,
    where: ColumnElement[bool] | None = None,
) -> int:
    """Write contacts as CSV (the same columns the importer reads); returns the count."""
    with database.session() as session:
        field_keys = sorted(repository.field_definitions(session))
    writer = csv.writer(out)
    writer.writerow(
        [
            "email",
            "first_name",
            "last_name",
            "phone",
            "status",
            "score",
            "tags",
            "lists",
            *field_keys,
            "created_at",
        ]
    )
    count, after = 0, 0
    while True:
        with database.session() as session:
            query = select(Contact).where(Contact.id > after)
            if where is not None:
                query = query.where(where)
            contacts = list(session.scalars(query.order_by(Contact.id).limit(EXPORT_PAGE)))
            if not contacts:
                return count
            ids = [c.id for c in contacts]
            tags = _grouped(
                session.execute(
                    select(ContactTag.contact_id, Tag.name)
                    .join(Tag, Tag.id == ContactTag.tag_id)
                    .where(ContactTag.contact_id.in_(ids))
                )
            )
            lists = _grouped(
                session.execute(
                    select(ListMembership.contact_id, MailingList.name)
                    .join(MailingList, MailingList.id == ListMembership.list_id)
                    .where(ListMembership.contact_id.in_(ids), ListMembership.status == "active")
                )
            )
        for c in contacts:
            values = c.fields or {}
            writer.writerow(
                [
                    c.email,
                    c.first_name or "",
                    c.last_name or "",
                    c.phone or "",
                    c.status,
                    c.score,
                    MULTI_SEPARATOR.join(sorted(tags.get(c.id, []))),
                    MULTI_SEPARATOR.join(sorted(lists.get(c.id, []))),
                    *(cell(values.get(k)) for k in field_keys),
                    c.created_at.isoformat(),
                ]
            )
        count += len(contacts)
        after = contacts[-1].id


def _grouped(rows: Any) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    for contact_id, name in rows:
        grouped.setdefault(contact_id, []).append(name)
    return grouped
