"""The worker: runs engine passes and effect delivery in threads, woken at once by work made in
this process (activity commits, enrolments: the database's commit hooks, tidings.db.hooks),
on PostgreSQL by LISTEN/NOTIFY from other processes, and otherwise by polling every second."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
from sqlalchemy.exc import DBAPIError, OperationalError

from tidings.automations.effects import deliver_due
from tidings.automations.engine import Engine
from tidings.clock import Clock
from tidings.config import Settings, get_settings
from tidings.db.engine import Database
from tidings.db.hooks import WORK_CHANNEL
from tidings.deals.scorekeeper import keep_scores_current
from tidings.webhooks.worker import run_webhooks

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0


class Worker:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        concurrency: int = 1,
        settings: Settings | None = None,
        poll_seconds: float = POLL_SECONDS,
        batch_size: int = 500,
    ) -> None:
        self.database = database
        self.clock = clock
        self.settings = settings or get_settings()
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self._stop = threading.Event()
        self._wakes: list[threading.Event] = []
        self._threads: list[threading.Thread] = []
        self._unsubscribe: Any = None
        self.steps = 0

    def wake(self) -> None:
        for wake in self._wakes:
            wake.set()

    def start(self) -> None:
        self._stop.clear()
        # Work committed through this database in this process (tidings.db.hooks.mark_work).
        self._unsubscribe = self.database.hooks.on_work_committed(self.wake)
        if self.database.dialect.notifies_commits:
            listener = threading.Thread(target=self._listen, name="tidings-listen", daemon=True)
            self._threads.append(listener)
            listener.start()
        for index in range(self.concurrency):
            wake = threading.Event()
            wake.set()
            self._wakes.append(wake)
            thread = threading.Thread(
                target=self._loop, args=(wake,), name=f"tidings-worker-{index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._threads.clear()
        self._wakes.clear()

    def run_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def _listen(self) -> None:
        """Wake on NOTIFY from other processes (PostgreSQL); polling remains the fallback."""
        url = self.database.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as connection:
                    connection.execute(f"LISTEN {WORK_CHANNEL}")
                    while not self._stop.is_set():
                        for _ in connection.notifies(timeout=0.5, stop_after=1):
                            self.wake()
            except psycopg.Error as exc:
                log.warning("LISTEN failed, polling only for a while: %s", exc)
                self._stop.wait(5.0)

    def _loop(self, wake: threading.Event) -> None:
        engine = Engine(self.database, self.clock, batch_size=self.batch_size)
        while not self._stop.is_set():
            wake.clear()
            try:
                stats = engine.run_until_idle()
                self.steps += stats.steps
                # Deal scores follow the activities just matched (and expire with time).
                while keep_scores_current(self.database, self.clock) and not self._stop.is_set():
                    pass
                while deliver_due(self.database, self.clock, self.settings):
                    if self._stop.is_set():
                        break
                run_webhooks(self.database, self.clock, self.settings)
            except (OperationalError, DBAPIError) as exc:
                # Deadlock victim, lost connection, busy database: the batch rolled back;
                # try again shortly.
                log.warning("worker pass failed, retrying: %s", exc)
                time.sleep(0.2)
                continue
            except Exception:
                log.exception("worker pass failed")
                time.sleep(1.0)
                continue
            wake.wait(self.poll_seconds)
