"""`tidings events import FILE.ndjson`: stream a file of events through the batch ingest path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from tidings.activities.service import Cause
from tidings.clock import Clock
from tidings.db.engine import Database
from tidings.events.service import ingest_events
from tidings.events.validation import BadLine

MAX_LINE = 1024 * 1024
BATCH = 5_000


@dataclass
class ImportSummary:
    stored: int = 0
    duplicates: int = 0
    created_contacts: int = 0
    rejected: int = 0
    samples: list[str] = field(default_factory=list)


def rejected_path_for(path: Path) -> Path:
    return path.with_name(path.stem + ".rejected.ndjson")


def _parse(line: bytes, number: int) -> Any:
    if len(line) > MAX_LINE:
        return BadLine(f"longer than {MAX_LINE} bytes")
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return BadLine(f"not valid JSON ({exc})")


def import_events(
    database: Database,
    stream: BinaryIO,
    *,
    clock: Clock,
    rejected_path: Path | None = None,
    create_contacts: bool = False,
    batch_size: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Each batch is its own transaction; a bad line is rejected (with its line number), never
    stops the import. Events with an event_id are stored once however often the file is run."""
    summary = ImportSummary()
    rejected_out = rejected_path.open("wb") if rejected_path else None
    lines: list[tuple[int, bytes]] = []

    def flush() -> None:
        if not lines:
            return
        events = [_parse(text, number) for number, text in lines]
        with database.session() as session:
            report = ingest_events(
                session,
                events,
                now=clock.now(),
                cause=Cause.IMPORT,
                create_contacts=create_contacts,
            )
        summary.stored += report.stored
        summary.duplicates += report.duplicates
        summary.created_contacts += report.created_contacts
        summary.rejected += len(report.rejected)
        for rejection in report.rejected:
            number, text = lines[rejection.index]
            if len(summary.samples) < 10:
                summary.samples.append(f"line {number}: {rejection.reason}")
            if rejected_out is not None:
                rejected_out.write(
                    orjson.dumps(
                        {
                            "line": number,
                            "reason": rejection.reason,
                            "text": text[:4096].decode("utf-8", "replace"),
                        }
                    )
                    + b"\n"
                )
        lines.clear()
        if progress is not None:
            progress(summary.stored)

    try:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            lines.append((number, line))
            if len(lines) >= batch_size:
                flush()
        flush()
    finally:
        if rejected_out is not None:
            rejected_out.close()
            if summary.rejected == 0 and rejected_path is not None:
                rejected_path.unlink(missing_ok=True)
    return summary
