"""The tables of jobs: every run recorded, the drop-folder files imported, the hygiene audit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base
from tidings.db.types import BigIntPK, JSONType, UTCDateTime


class JobRun(Base):
    """One run of one job: queued -> running -> succeeded | partial | failed.

    The row is also the run's lease and its resume point: the runner holding it renews
    `lease_until` at every checkpoint, and writes `state` (where the job stands: a cursor, the
    broadcast it made, the file it writes) in the same transaction as the effects up to that
    point - so a run killed mid-way is found by its stale lease and resumed from `state`,
    never doing twice what was committed.
    """

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # The system automation (and its version) that started the run; None: by hand (API, CLI).
    automation_id: Mapped[int | None] = mapped_column(BigInteger)
    automation_version: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # A schedule tick or a finished event that started the run: one run per key, however many
    # workers see it (the unique index; NULLs, runs by hand, do not collide).
    trigger_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # Who asked for it (cli, api, worker, automation:<id>): the hygiene audit names it.
    requested_by: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rows_read: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_written: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_skipped: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_done: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_total: Mapped[int | None] = mapped_column(BigInteger)
    # The first errors, each {"item": row number or name, "message": ...} (capped).
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # Why a run failed, or a one-line summary of what it did.
    detail: Mapped[str | None] = mapped_column(Text)
    output_file: Mapped[str | None] = mapped_column(String(500))
    state: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (
        Index("ix_job_runs_status_id", "status", "id"),
        Index("ix_job_runs_kind_id", "kind", "id"),
        Index("ix_job_runs_created_at", "created_at"),
    )


class ImportedFile(Base):
    """A CSV of the drop folder, by the SHA-256 of its content: each content is imported once
    (the same file dropped again, under any name, is skipped)."""

    __tablename__ = "job_imported_files"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(500))
    run_id: Mapped[int] = mapped_column(BigInteger)
    # importing (a run holds it) | processed | failed
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class HygieneAudit(Base):
    """What the law asks a deletion to keep: who, when, why, what kind and how many - never
    the personal data deleted (no address, no name, no contact id)."""

    __tablename__ = "job_hygiene_audit"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(32))
    requested_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    contacts: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
