"""The system-automation loop of `tidings worker`: every second, start the runs of due ticks
and finished events (exactly once across workers), then advance the due runs. The clock is
injected; `poll()` is one round, which tests call after moving a fake clock."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from tidings.clock import Clock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.system import runs, starts

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0


@dataclass(slots=True)
class Round:
    started: int = 0
    advanced: int = 0


class SystemScheduler:
    def __init__(self, database: Database, clock: Clock, settings: Settings) -> None:
        self.database = database
        self.clock = clock
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> Round:
        result = Round()
        now = self.clock.now()
        with self.database.session() as session:
            automations = starts.active_system_automations(session)
            result.started += starts.start_scheduled(session, automations, now)
            result.started += starts.start_from_events(session, automations, now)
        result.advanced = runs.advance_due(self.database, self.clock, self.settings)
        return result

    def run_until_idle(self, rounds: int = 20) -> Round:
        """Poll until a round starts and advances nothing (jobs finishing start chained runs)."""
        total = Round()
        for _ in range(rounds):
            one = self.poll()
            total.started += one.started
            total.advanced += one.advanced
            if not one.started and not one.advanced:
                break
        return total

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tidings-system", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # a lost database: log it, try again at the next round
                log.exception("system automations poll failed")
            self._stop.wait(POLL_SECONDS)
