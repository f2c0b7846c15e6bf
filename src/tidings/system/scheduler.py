"""The system-automation loop of `tidings worker`: every second, start the runs of due ticks
and finished events (exactly once across workers), then advance the due runs. The clock is
injected; `poll()` is one round, which tests call after moving a fake clock."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from tidings.automations.registry import Registry
from tidings.clock import Clock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.polling import PollingThread
from tidings.system import runs, starts

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0


@dataclass(slots=True)
class Round:
    started: int = 0
    advanced: int = 0


class SystemScheduler(PollingThread):
    thread_name = "tidings-system"

    def __init__(self, database: Database, clock: Clock, settings: Settings) -> None:
        self.database = database
        self.clock = clock
        self.settings = settings
        self.registry = Registry()  # parsed definitions, by (automation, version)
        self.recorded_ticks: dict[int, datetime] = {}  # newest tick seen, per automation
        super().__init__(POLL_SECONDS)

    def poll(self) -> Round:
        result = Round()
        now = self.clock.now()
        with self.database.session() as session:
            automations = starts.active_system_automations(session, self.registry)
            result.started += starts.start_scheduled(session, automations, now, self.recorded_ticks)
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
