"""Batched, durable recording of tracking events.

The open pixel must answer fast under load, so requests only queue their event; a background
thread writes the queue every FLUSH_SECONDS (or as soon as MAX_PENDING events wait) through
`ingest_events`, one transaction per flush. Stopping (the app's shutdown) writes whatever is
still queued, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from tidings.activities.service import Cause
from tidings.clock import Clock
from tidings.db.engine import Database
from tidings.events.service import IngestReport, ingest_events, prune_events

log = logging.getLogger("tidings.tracking")

FLUSH_SECONDS = 0.2
MAX_PENDING = 2_000
PRUNE_EVERY_SECONDS = 3600.0
MAX_QUEUE = 500_000  # beyond this, the database is not keeping up: record synchronously


class TrackingRecorder:
    """Also applies the event retention (TIDINGS_EVENT_RETENTION_DAYS) once an hour, since it
    is the one background thread every `tidings serve` runs."""

    def __init__(
        self, database: Database, clock: Clock, *, retention_days: int | None = None
    ) -> None:
        self.database = database
        self.clock = clock
        self.retention_days = retention_days
        self._next_prune = 0.0
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._pending.append(event)
            size = len(self._pending)
        if self._thread is None or size >= MAX_QUEUE:
            self.flush()
        elif size >= MAX_PENDING:
            self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> IngestReport:
        """Write everything queued so far, in one transaction."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return IngestReport()
            try:
                with self.database.session() as session:
                    report = ingest_events(
                        session, batch, now=self.clock.now(), cause=Cause.TRACKING
                    )
            except Exception:
                with self._lock:  # keep them for the next attempt
                    self._pending[:0] = batch
                raise
            for rejected in report.rejected[:5]:
                log.info("tracking event not recorded: %s", rejected.reason)
            return report

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
        self.flush()

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
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            try:
                self.flush()
                if self.retention_days is not None and time.monotonic() >= self._next_prune:
                    self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                    pruned = self.prune_expired()
                    if pruned:
                        log.info("pruned %d events older than %d days", pruned, self.retention_days)
            except Exception:
                log.exception("writing tracking events failed; retrying")
                self._stopping.wait(1.0)
