"""The jobs side of `tidings worker`: at start-up it resumes the runs left queued or
interrupted (a killed process's); then, every TIDINGS_IMPORT_POLL_SECONDS, it imports the
new files of the drop folder (when TIDINGS_IMPORT_DIR is set), picks up runs queued by the API
of a process that stopped, and deletes exports past their retention (once an hour)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from tidings.clock import Clock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.jobs import runner
from tidings.jobs.dropfolder import waiting_files
from tidings.jobs.export import clean_exports
from tidings.jobs.specs import ImportSpec
from tidings.polling import PollingThread

log = logging.getLogger(__name__)
CLEAN_EVERY = timedelta(hours=1)


class JobsWorker(PollingThread):
    thread_name = "tidings-jobs"

    def __init__(self, database: Database, clock: Clock, settings: Settings) -> None:
        self.database = database
        self.clock = clock
        self.settings = settings
        super().__init__(settings.import_poll_seconds)
        self._cleaned_at: datetime | None = None

    def poll(self) -> None:
        """One round: resume what is unfinished, import the drop folder, clean old exports."""
        runner.resume_unfinished(self.database, clock=self.clock, settings=self.settings)
        folder = self.settings.import_dir
        if folder is not None and waiting_files(folder):
            runner.run_job(
                self.database,
                ImportSpec(kind="import"),
                clock=self.clock,
                settings=self.settings,
                requested_by="worker",
            )
        now = self.clock.now()
        if self._cleaned_at is None or now - self._cleaned_at >= CLEAN_EVERY:
            deleted = clean_exports(self.settings, now)
            if deleted:
                log.info("deleted %d export file(s) past their retention", len(deleted))
            self._cleaned_at = now
