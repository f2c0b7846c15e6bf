"""Batched recording of tracking events, and what may be lost when.

The open pixel must answer fast under load, so opens and page visits are only queued: a
background thread writes the queue every `flush_seconds` (TIDINGS_TRACKING_FLUSH_SECONDS,
default 0.2 s; at once when MAX_PENDING events wait) through `ingest_events`. A process killed
outright (kill -9, power loss) loses what was queued since the last write: at most the last
`flush_seconds` of opens and visits. Stopping cleanly (the app's shutdown) writes everything.

Clicks are written before their redirect is answered (`record_now`): the request queues its
click, wakes the writer and waits until the write is done. Clicks arriving together share one
transaction (a group commit), so the waiting costs a write, not a write per click. Only when the
database cannot be reached does a click's request stop waiting: the click stays queued.

One event can never block the queue: a write that fails is split in halves until the failing
events stand alone, and those are dropped and logged, while the database answers; when it does
not, the events stay queued and are retried. The queue holds at most MAX_QUEUE events: beyond
that (the database has been unreachable for a while) new events are dropped and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.clock import Clock
from tidings.db.engine import Database
from tidings.events.service import IngestReport, ingest_events, prune_events

log = logging.getLogger("tidings.tracking")

FLUSH_SECONDS = 0.2
MAX_PENDING = 2_000
WRITE_BATCH = 10_000  # events per transaction when a backlog is written
PRUNE_EVERY_SECONDS = 3600.0
RETRY_SECONDS = 1.0
MAX_QUEUE = 500_000
# How long a click's request waits for its write at most (the database being slow, not down:
# a write that fails releases the waiting requests at once).
MAX_WAIT_SECONDS = 30.0

Ingest = Callable[..., IngestReport]


class DatabaseUnavailable(Exception):
    """The database did not answer: the events stay queued."""


class TrackingRecorder:
    """Also applies the event retention (TIDINGS_EVENT_RETENTION_DAYS) once an hour, since it
    is the one background thread every `tidings serve` runs."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        retention_days: int | None = None,
        flush_seconds: float = FLUSH_SECONDS,
        max_queue: int = MAX_QUEUE,
        ingest: Ingest = ingest_events,
    ) -> None:
        self.database = database
        self.clock = clock
        self.retention_days = retention_days
        self.flush_seconds = flush_seconds
        self.max_queue = max_queue
        self.dropped = 0  # events given up on: refused by the database, or the queue was full
        self._ingest = ingest
        self._next_prune = 0.0
        self._pending: list[dict[str, Any]] = []
        self._waiting: dict[int, threading.Event] = {}  # id(event) -> its request, waiting
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, event: dict[str, Any]) -> None:
        """Queue one event (written within `flush_seconds`)."""
        if self._queue(event, None) and self._thread is None:
            self.flush()

    def record_now(self, event: dict[str, Any]) -> None:
        """Queue one event and return once it is written (or refused by the database, or the
        database cannot be reached: the event then stays queued)."""
        if self._thread is None:  # no writer thread (tests, scripts): write it here
            self._queue(event, None)
            try:
                self.flush()
            except DatabaseUnavailable:
                log.exception("writing a tracking event failed; queued for a retry")
            return
        done = threading.Event()
        if self._queue(event, done):
            self._wake.set()
            done.wait(MAX_WAIT_SECONDS)

    def _queue(self, event: dict[str, Any], done: threading.Event | None) -> bool:
        with self._lock:
            full = len(self._pending) >= self.max_queue
            if full:
                self.dropped += 1
            else:
                self._pending.append(event)
                if done is not None:
                    self._waiting[id(event)] = done
            size = len(self._pending)
        if full:
            if self.dropped % 10_000 == 1:
                log.error("tracking queue full (%d events): %d dropped", size, self.dropped)
            return False
        if size >= MAX_PENDING:
            self._wake.set()
        return True

    def _release(self, events: list[dict[str, Any]]) -> None:
        """Let the requests waiting for these events answer."""
        with self._lock:
            waiting = [self._waiting.pop(id(e), None) for e in events] if self._waiting else []
        for done in waiting:
            if done is not None:
                done.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> IngestReport:
        """Write everything queued so far. Raises DatabaseUnavailable (the events are kept for
        the next attempt) when the database does not answer."""
        report = IngestReport()
        with self._flush_lock:
            while True:
                with self._lock:
                    batch = self._pending[:WRITE_BATCH]
                    del self._pending[:WRITE_BATCH]
                if not batch:
                    break
                try:
                    self._write_isolating(batch, report)
                finally:
                    self._release(batch)
        for rejected in report.rejected[:5]:
            log.info("tracking event not recorded: %s", rejected.reason)
        return report

    def _write(self, session: Session, events: Sequence[dict[str, Any]]) -> IngestReport:
        return self._ingest(session, events, now=self.clock.now(), cause=Cause.TRACKING)

    def _write_isolating(self, batch: list[dict[str, Any]], report: IngestReport) -> None:
        """Write `batch` in one transaction, or, when that fails, in halves until each event
        that fails stands alone (dropped and logged: the rest is written)."""
        parts = [batch]
        while parts:
            part = parts.pop()
            try:
                with self.database.session() as session:
                    report.merge(self._write(session, part))
                continue
            except Exception as exc:
                error = exc
            if not self._database_answers():
                self._requeue([event for rest in [part, *reversed(parts)] for event in rest])
                raise DatabaseUnavailable(str(error)) from error
            if len(part) > 1:
                middle = len(part) // 2
                parts += [part[middle:], part[:middle]]
                continue
            with self._lock:
                self.dropped += 1
            log.error("tracking event dropped, the database refused it (%s): %r", error, part[0])

    def _database_answers(self) -> bool:
        try:
            with self.database.session() as session:
                session.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def _requeue(self, events: list[dict[str, Any]]) -> None:
        with self._lock:
            self._pending[:0] = events

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="tidings-tracking", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write what is left (called on shutdown)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            self._wake.set()
            thread.join()
        try:
            self.flush()
        except DatabaseUnavailable as exc:
            log.error("stopping: %d tracking events not written (%s)", self.pending(), exc)

    def prune_expired(self) -> int:
        """Delete raw events older than the retention, in short transactions."""
        if self.retention_days is None:
            return 0
        cutoff = self.clock.now() - timedelta(days=self.retention_days)
        total = 0
        while True:
            with self.database.session() as session:
                removed = prune_events(session, cutoff)
            total += removed
            if removed == 0:
                return total

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
                if self.retention_days is not None and time.monotonic() >= self._next_prune:
                    self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                    pruned = self.prune_expired()
                    if pruned:
                        log.info("pruned %d events older than %d days", pruned, self.retention_days)
            except DatabaseUnavailable as exc:
                log.warning(
                    "database unavailable, %d tracking events wait: %s", self.pending(), exc
                )
                self._stopping.wait(RETRY_SECONDS)
            except Exception:
                log.exception("pruning tracking events failed")
                self._stopping.wait(RETRY_SECONDS)
