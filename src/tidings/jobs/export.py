"""The export job: contacts of a segment, raw events of a window, or a report, to a file in
TIDINGS_EXPORT_DIR.

The file is written under a temporary name (`.NAME.part`) and renamed into place once
complete (an atomic rename in one folder), so a reader never sees half a file and a run
killed mid-way leaves no second file: its resume writes the temporary file again from the
start, and a run killed after the rename finds its file there and is done.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import orjson
from sqlalchemy import Integer, func, select
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.config import Settings
from tidings.contacts import export as contacts_export
from tidings.db.dialect import dialect_of
from tidings.jobs import reports
from tidings.jobs.common import reading_session, segment_where, writable_folder
from tidings.jobs.context import JobContext, Outcome
from tidings.jobs.specs import ContactsExport, EventsExport, ExportSpec, ReportExport
from tidings.jobs.sql import copy_csv, iso_text, json_text

EVENT_COLUMNS = ["id", "occurred_at", "type", "contact_id", "machine", "event_id", "data"]
PARTITION = 20_000
# Progress goes to the run row this often (rows); the CLI's bar is told at every partition.
SAVE_EVERY = 200_000


def check(session: Session, spec: ExportSpec, settings: Settings, now: datetime) -> None:
    writable_folder(settings.export_dir, "TIDINGS_EXPORT_DIR")
    if isinstance(spec.export, ContactsExport) and spec.export.segment is not None:
        segment_where(session, spec.export.segment, now, field="export.segment")
    elif isinstance(spec.export, ReportExport):
        reports.check(session, spec.export)


def file_name(spec: ExportSpec, run_id: int) -> str:
    base = spec.name or f"{spec.export.type}"
    return f"{base}-{run_id}.{spec.format}{'.gz' if spec.gzip else ''}"


def run(ctx: JobContext) -> Outcome:
    spec = ctx.spec
    assert isinstance(spec, ExportSpec)
    folder = writable_folder(ctx.settings.export_dir, "TIDINGS_EXPORT_DIR")
    name = ctx.state.get("file") or file_name(spec, ctx.run_id)
    final, part = folder / name, folder / f".{name}.part"
    if ctx.state.get("complete"):  # written in full before the run was interrupted
        if part.exists():
            os.replace(part, final)
        if final.exists():
            return Outcome(f"{ctx.written} rows written to {name}", name)
    with ctx.database.session() as session:
        check(session, spec, ctx.settings, ctx.now())
        ctx.checkpoint(session, file=name, complete=False)
    ctx.read = ctx.written = ctx.done = 0
    with _open(part, spec.gzip) as out:
        _write(ctx, spec, out)
        out.flush()
    ctx.save(file=name, complete=True)
    os.replace(part, final)
    return Outcome(f"{ctx.written} rows written to {name}", name)


def _open(path: Path, compressed: bool) -> TextIO:
    if compressed:
        # Level 3: most of level 9's size at a fraction of its time.
        return gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=3)
    return path.open("w", encoding="utf-8", newline="")


def _write(ctx: JobContext, spec: ExportSpec, out: TextIO) -> None:
    export = spec.export
    with reading_session(ctx.database) as session:
        if isinstance(export, ContactsExport):
            _contacts(ctx, session, export, out)
        elif isinstance(export, EventsExport):
            _events(ctx, session, export, spec.format, out)
        else:
            columns, rows = reports.build(session, export, ctx.now())
            _table(ctx, columns, rows, spec.format, out)


def _count_rows(ctx: JobContext, partition_size: int) -> None:
    ctx.read += partition_size
    ctx.written += partition_size
    ctx.progress(ctx.written)
    if ctx.written // SAVE_EVERY != (ctx.written - partition_size) // SAVE_EVERY:
        ctx.save()


def _contacts(ctx: JobContext, session: Session, export: ContactsExport, out: TextIO) -> None:
    where = None
    if export.segment is not None:
        where = segment_where(session, export.segment, ctx.now(), field="export.segment")
    header, keys = contacts_export.header(session)
    total = contacts_export.count(session, where)
    ctx.progress(0, total)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    query = contacts_export.query(session, where, keys)
    if _postgres(session) and not keys:  # custom fields need Python's formatting
        _copy(ctx, session, query, out, total)
        return
    for partition in contacts_export.rows(session, query, keys):
        writer.writerows(partition)
        _count_rows(ctx, len(partition))


def _postgres(session: Session) -> bool:
    return dialect_of(session).is_postgres


def _copy(ctx: JobContext, session: Session, query: Any, out: TextIO, total: int) -> None:
    """PostgreSQL: the rows by COPY; counted from the snapshot's count (the reading session
    is REPEATABLE READ there, so the count and the COPY see the same rows)."""
    lines = 0
    for chunk_lines in copy_csv(session, query, out):
        lines += chunk_lines
        ctx.progress(min(lines, total))
    _count_rows(ctx, total)


def _event_query(export: EventsExport) -> Any:
    a = Activity
    query = select(
        a.id,
        iso_text(a.occurred_at),
        a.type,
        a.contact_id,
        a.machine.cast(Integer),
        a.event_id,
        json_text(a.data),
    ).where(a.occurred_at >= export.since, a.occurred_at < export.until)
    if export.types:
        query = query.where(a.type.in_(export.types))
    return query


def _events(ctx: JobContext, session: Session, export: EventsExport, fmt: str, out: TextIO) -> None:
    query = _event_query(export)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    ctx.progress(0, int(total or 0))
    ordered = query.order_by(Activity.id)
    if fmt == "csv" and _postgres(session):
        csv.writer(out, lineterminator="\n").writerow(EVENT_COLUMNS)
        _copy(ctx, session, ordered, out, int(total or 0))
        return
    # Core, not ORM, execution: the rows come as tuples without the ORM's loading layers.
    result = session.connection().execution_options(yield_per=PARTITION).execute(ordered)
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EVENT_COLUMNS)
        for partition in result.partitions():
            writer.writerows(partition)
            _count_rows(ctx, len(partition))
        return
    for partition in result.partitions():
        out.write("".join(_ndjson_lines(partition)))
        _count_rows(ctx, len(partition))


def _ndjson_lines(rows: Any) -> Iterator[str]:
    dumps = orjson.dumps
    for id_, at, kind, contact, machine, event_id, data in rows:
        yield (
            f'{{"id":{id_},"occurred_at":"{at}","type":{dumps(kind).decode()},'
            f'"contact_id":{"null" if contact is None else contact},'
            f'"machine":{"true" if machine else "false"},'
            f'"event_id":{dumps(event_id).decode()},"data":{data or "{}"}}}\n'
        )


def _table(
    ctx: JobContext, columns: list[str], rows: list[list[Any]], fmt: str, out: TextIO
) -> None:
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        for row in rows:
            out.write(orjson.dumps(dict(zip(columns, row, strict=True))).decode() + "\n")
    ctx.progress(0, len(rows))
    _count_rows(ctx, len(rows))


def clean_exports(settings: Settings, now: datetime) -> list[str]:
    """Delete export files (and leftover temporary files) older than the retention period;
    returns the names deleted."""
    if settings.export_retention_days is None or not settings.export_dir.is_dir():
        return []
    cutoff = (now - timedelta(days=settings.export_retention_days)).timestamp()
    deleted = []
    for path in settings.export_dir.iterdir():
        if path.is_file() and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            deleted.append(path.name)
    return sorted(deleted)
