"""What a running job sees: its spec, where it stands, its counts, and the checkpoint that
writes them to its run row in the same transaction as the job's effects."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from tidings.clock import Clock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.jobs.models import JobRun
from tidings.jobs.specs import JobSpec

# The first errors a run keeps (a file of a million bad rows is not copied into the row).
MAX_ERRORS = 20

ProgressCallback = Callable[[int, int | None], None]


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIAL = "partial"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.PARTIAL)


class LeaseLost(Exception):
    """Another worker took this run over (our lease ran out): stop without touching it."""


def lease_owner() -> str:
    """host:pid:thread - a worker on the same host tells a dead owner from a live one."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def owner_is_gone(owner: str | None) -> bool:
    """True when `owner` was a process on this host that no longer exists (killed)."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another host: only its lease running out frees the run
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(slots=True)
class Outcome:
    """What a job hands back: a one-line summary and the file it wrote, if any."""

    detail: str | None = None
    output_file: str | None = None


@dataclass
class JobContext:
    database: Database
    clock: Clock
    settings: Settings
    run_id: int
    spec: JobSpec
    requested_by: str
    owner: str
    # Where the job stands (a cursor, the broadcast it made, the file it writes): written by
    # every checkpoint, handed back when a killed run resumes.
    state: dict[str, Any]
    read: int = 0
    written: int = 0
    rejected: int = 0
    skipped: int = 0
    done: int = 0
    total: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    on_progress: ProgressCallback | None = None

    def now(self) -> datetime:
        return self.clock.now()

    def error(self, item: str | int | None, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"item": item, "message": message})

    def progress(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)

    def counts(self) -> dict[str, int]:
        return {
            "read": self.read,
            "written": self.written,
            "rejected": self.rejected,
            "skipped": self.skipped,
        }

    def checkpoint(self, session: Session, **state: Any) -> None:
        """Write where the job stands, its counts and progress to its run row in `session` -
        the transaction of the effects up to here - and renew the lease. Raises LeaseLost
        when the run is no longer ours (then `session` must roll back)."""
        self.state.update(state)
        result = session.execute(
            update(JobRun)
            .where(JobRun.id == self.run_id, JobRun.lease_owner == self.owner)
            .values(
                state=dict(self.state),
                rows_read=self.read,
                rows_written=self.written,
                rows_rejected=self.rejected,
                rows_skipped=self.skipped,
                progress_done=self.done,
                progress_total=self.total,
                errors=list(self.errors),
                lease_until=self.now() + timedelta(seconds=self.settings.job_lease_seconds),
            )
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise LeaseLost(f"job run {self.run_id} was taken over")

    def save(self, **state: Any) -> None:
        """A checkpoint in a transaction of its own (progress, or a step with no DB effect)."""
        with self.database.session() as session:
            self.checkpoint(session, **state)
