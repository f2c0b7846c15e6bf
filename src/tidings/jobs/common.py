"""What several jobs share: the segment a spec names, a folder the job may write."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from tidings.contacts.models import MailingList
from tidings.db.engine import Database
from tidings.errors import NotFound, ValidationFailed, field_error
from tidings.segments import service as segments


def segment_where(
    session: Session, segment: Any, now: datetime, *, field: str = "segment"
) -> ColumnElement[bool]:
    """The WHERE clause over contacts of a spec's segment: a saved segment's name, or a
    condition; its errors name `field`."""
    try:
        condition = segments.resolve(session, segment) if isinstance(segment, str) else segment
        return segments.compile_checked(session, condition, now)
    except (ValidationFailed, NotFound) as exc:
        detail = exc.detail if exc.detail.startswith(field) else f"{field}: {exc.detail}"
        raise type(exc)(detail, errors=exc.errors) from None


def list_id(session: Session, name: str, *, field: str = "list") -> int:
    found = session.scalar(select(MailingList.id).where(MailingList.name == name))
    if found is None:
        raise NotFound(f"{field}: list {name!r} does not exist")
    return int(found)


def writable_folder(path: Path, setting: str) -> Path:
    """`path`, made if missing; a ValidationFailed naming the setting when it cannot be
    written (before any run row or file exists)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise field_error(setting, f"{path} cannot be created: {exc.strerror}") from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise field_error(setting, f"{path} is not a writable folder")
    return path


@contextmanager
def reading_session(database: Database) -> Iterator[Session]:
    """A session for a long read (an export): on SQLite it takes no write lock, so the job's
    checkpoints (and everyone else) keep writing while it streams; on PostgreSQL it reads one
    snapshot."""
    with database.engine.connect() as connection:
        reading = connection.execution_options(**database.dialect.snapshot_read_options())
        with Session(bind=reading) as session:
            yield session
