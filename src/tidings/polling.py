"""A background thread that calls `poll()` every `interval_seconds` until stopped: the shape of
the jobs worker and the system scheduler inside `tidings worker`."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class PollingThread:
    thread_name = "tidings-poll"

    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> object:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
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
            except Exception:  # a lost database: log it, try again at the next poll
                log.exception("%s: poll failed", self.thread_name)
            self._stop.wait(self.interval_seconds)
