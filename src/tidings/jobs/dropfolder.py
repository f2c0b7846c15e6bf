"""The import job: every new CSV of the drop folder (TIDINGS_IMPORT_DIR), through the
contacts importer.

Each content is imported once: a file is known by the SHA-256 of its bytes
(`job_imported_files`, unique), so the same file dropped again - under any name - is moved
away without a second import. A file is claimed (its hash row written) before it is read; a
run killed mid-file finds its own claim on resume and imports the file again from the top,
which the importer makes harmless (its batches are upserts: rows written before the kill come
out unchanged). Then the file moves to `processed/` (its rejected rows beside it as
NAME.rejected.csv) or, when it cannot be imported at all (not CSV, no email column, another
encoding), to `failed/` with NAME.error.txt saying why.

Drop files by rename (write them elsewhere or under a name starting with '.', then move them
in): names starting with '.' are never picked up.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.config import Settings
from tidings.contacts.importer import import_contacts
from tidings.errors import TidingsError, field_error
from tidings.jobs.common import writable_folder
from tidings.jobs.context import JobContext, Outcome
from tidings.jobs.models import ImportedFile
from tidings.jobs.specs import ImportSpec

PROCESSED, FAILED, IMPORTING, BUSY = "processed", "failed", "importing", "busy"


def folder_of(spec: ImportSpec, settings: Settings) -> Path:
    if spec.folder:
        return Path(spec.folder)
    if settings.import_dir is None:
        raise field_error("TIDINGS_IMPORT_DIR", "no drop folder is set (or give folder)")
    return settings.import_dir


def check(session: Session, spec: ImportSpec, settings: Settings, now: datetime) -> None:
    folder = folder_of(spec, settings)
    field = "folder" if spec.folder else "TIDINGS_IMPORT_DIR"
    if not folder.is_dir():
        raise field_error(field, f"{folder} is not a folder")
    writable_folder(folder, field)


def waiting_files(folder: Path) -> list[Path]:
    """The files dropped into `folder` and not yet moved away, oldest name first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(ctx: JobContext) -> Outcome:
    spec = ctx.spec
    assert isinstance(spec, ImportSpec)
    folder = folder_of(spec, ctx.settings)
    with ctx.database.session() as session:
        check(session, spec, ctx.settings, ctx.now())
    files: dict[str, Any] = dict(ctx.state.get("files", {}))
    waiting = waiting_files(folder)
    ctx.progress(ctx.done, ctx.done + len(waiting))
    for path in waiting:
        files[path.name] = _one_file(ctx, spec, folder, path)
        ctx.progress(ctx.done + 1)
        ctx.save(files=files)
    imported = sum(1 for f in files.values() if f["status"] == PROCESSED)
    return Outcome(f"{imported} of {len(files)} file(s) imported")


def _one_file(ctx: JobContext, spec: ImportSpec, folder: Path, path: Path) -> dict[str, Any]:
    if path.suffix.lower() != ".csv":
        return _failed(ctx, folder, path, "not a CSV file (the name must end in .csv)")
    digest = content_hash(path)
    claim = _claim(ctx, path.name, digest)
    if claim == BUSY:  # another worker's run is importing it: its file to move
        return {"status": BUSY, "hash": digest}
    if claim == FAILED:
        return _failed(ctx, folder, path, "the same content failed to import before")
    if claim != IMPORTING:  # imported before (this content, any name): nothing to do twice
        _move(path, folder / PROCESSED)
        return {"status": "duplicate", "hash": digest}
    rejected = folder / f".{path.stem}.rejected.csv"
    try:
        with path.open("rb") as stream:
            summary = import_contacts(
                ctx.database,
                stream,
                clock=ctx.clock,
                rejected_path=rejected,
                list_name=spec.list,
                tag=spec.tag,
                status=spec.status,
                cause=Cause.IMPORT,
                batch_size=ctx.settings.job_batch_size,
            )
    except (TidingsError, LookupError, UnicodeError) as exc:
        rejected.unlink(missing_ok=True)
        _record(ctx, digest, FAILED)
        detail = exc.detail if isinstance(exc, TidingsError) else str(exc)
        return _failed(ctx, folder, path, detail)
    ctx.read += summary.rows
    ctx.written += summary.created + summary.updated
    ctx.skipped += summary.unchanged
    ctx.rejected += summary.rejected
    for sample in summary.samples:
        ctx.error(path.name, sample)
    _record(ctx, digest, PROCESSED)
    moved = _move(path, folder / PROCESSED)
    if rejected.exists():
        os.replace(rejected, moved.with_name(moved.stem + ".rejected.csv"))
    return {
        "status": PROCESSED,
        "hash": digest,
        "created": summary.created,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "rejected": summary.rejected,
    }


def _claim(ctx: JobContext, name: str, digest: str) -> str:
    """IMPORTING when this run is to import the content (first time, or its own interrupted
    claim); BUSY when another run holds it; else the status of the earlier import."""
    try:
        with ctx.database.session() as session:
            row = session.scalar(select(ImportedFile).where(ImportedFile.content_hash == digest))
            if row is None:
                session.add(
                    ImportedFile(
                        content_hash=digest,
                        name=name,
                        run_id=ctx.run_id,
                        status=IMPORTING,
                        created_at=ctx.now(),
                    )
                )
                return IMPORTING
            if row.status == IMPORTING:
                return IMPORTING if row.run_id == ctx.run_id else BUSY
            return row.status
    except IntegrityError:  # another worker claimed the same content a moment ago
        return BUSY


def _record(ctx: JobContext, digest: str, status: str) -> None:
    with ctx.database.session() as session:
        row = session.scalar(select(ImportedFile).where(ImportedFile.content_hash == digest))
        assert row is not None
        row.status, row.finished_at = status, ctx.now()


def _failed(ctx: JobContext, folder: Path, path: Path, reason: str) -> dict[str, Any]:
    ctx.error(path.name, reason)
    ctx.rejected += 1
    moved = _move(path, folder / FAILED)
    moved.with_name(moved.name + ".error.txt").write_text(reason + "\n", encoding="utf-8")
    return {"status": FAILED, "reason": reason}


def _move(path: Path, into: Path) -> Path:
    """Move `path` into the folder `into`, never over an earlier file of the same name."""
    into.mkdir(exist_ok=True)
    target = into / path.name
    number = 1
    while target.exists():
        target = into / f"{path.stem}-{number}{path.suffix}"
        number += 1
    os.replace(path, target)
    return target
