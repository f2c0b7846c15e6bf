"""The engine: the loop that ties the trigger matcher, the run store and the step interpreter.

One *pass* = scan the daily triggers, match new activities to triggers (creating enrolments),
then claim due enrolments in batches and run them; repeated until nothing is left to do, so
work created by a step (a tag that starts another automation) runs in the same pass.

A batch goes through the modules in this order, in ONE transaction:
  runstore.claim         the due enrolments, locked, read into Runs (tidings.automations.runs)
  interpreter            status check, goals, then steps set-wise per (version, step); actions
                         (tidings.automations.actions) write their effects; runs started on the
                         way (start_automation) join the batch
  runstore.write_back    each run's new position once, runs started here inserted once
  journal.write          the history rows and step counts
A matching round (tidings.automations.matcher) starts runs from activities and runs them
through the same interpreter and write-back in its own transaction.

Durability: a batch is ONE transaction. It claims its rows (PostgreSQL: FOR UPDATE SKIP LOCKED;
SQLite: the write lock of BEGIN IMMEDIATE), runs the steps, writes their effects (tags,
activities, outbox rows) and the enrolments' new positions, and commits. A crash at any point
rolls all of it back, so an effect is never lost nor doubled; the rows are simply claimed again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tidings.automations import interpreter, matcher, runstore
from tidings.automations.actions import Context, EmailSender, messaging_sender
from tidings.automations.enrolments import Entered, SlotTaken, enrol, enrol_deal_runs
from tidings.automations.journal import Journal, own_shard
from tidings.automations.registry import Registry
from tidings.automations.runs import Run
from tidings.clock import Clock
from tidings.db.engine import Database, use_bulk_page_cache
from tidings.errors import TidingsError
from tidings.memory import gc_paused

log = logging.getLogger(__name__)

SLOT_RETRIES = 3


@dataclass(slots=True)
class PassStats:
    matched: int = 0
    enrolled: int = 0
    steps: int = 0
    batches: int = 0
    claimed: int = 0

    def add(self, other: PassStats) -> None:
        self.matched += other.matched
        self.enrolled += other.enrolled
        self.steps += other.steps
        self.batches += other.batches
        self.claimed += other.claimed


@dataclass
class Engine:
    database: Database
    clock: Clock
    batch_size: int = 500
    activity_batch: int = 5000
    send_email: EmailSender = messaging_sender
    registry: Registry = field(default_factory=Registry)
    shard: int = field(default_factory=own_shard)  # this worker's StepCount rows

    # --- the pass ----------------------------------------------------------------------------

    def run_until_idle(self, max_rounds: int = 100_000) -> PassStats:
        """Match and run until no activity is unmatched and no enrolment is due."""
        total = PassStats()
        for _ in range(max_rounds):
            stats = PassStats()
            stats.add(self.scan_dates())
            stats.add(self.match_triggers())
            stats.add(self.process_due())
            total.add(stats)
            if stats.matched == 0 and stats.claimed == 0 and stats.enrolled == 0:
                break
        return total

    # --- triggers ----------------------------------------------------------------------------

    def match_triggers(self) -> PassStats:
        stats = PassStats()
        with gc_paused(), self.database.session() as session:
            snapshot = self.registry.refresh(session)
            matched = matcher.match_activities(
                session,
                snapshot,
                self.clock,
                limit=self.activity_batch,
            )
            if matched is None:
                return stats
            stats.matched, stats.enrolled = matched.activities, matched.enrolled
            stats.steps = self._run_entered(session, matched.entered, matched.started, matched.now)
        return stats

    def scan_dates(self) -> PassStats:
        """Date-anniversary triggers: enrol each day's contacts once (the day is remembered)."""
        stats = PassStats()
        with self.database.session() as session:
            snapshot = self.registry.refresh(session)
            stats.enrolled = matcher.scan_dates(session, snapshot, self.clock)
        return stats

    def _run_entered(
        self,
        session: Session,
        entered: list[Entered],
        started: dict[tuple[int, ...], int],
        now: datetime,
    ) -> int:
        """Run the enrolments the triggers just started, in this transaction: in a batch of
        their own they would be stored, read back and written a second time. A step that
        raises rolls back only this part; the enrolments are then stored as they entered and
        run (isolated) in a batch of their own.
        """
        if not any(e.rows for e in entered):
            return 0
        try:
            with session.begin_nested():
                use_bulk_page_cache(session)
                ctx = Context(
                    session,
                    now,
                    self.registry,
                    Journal(now, self.shard),
                    send_email=self.send_email,
                    entered=list(entered),
                    started=started,
                )
                return self._advance(ctx, [])
        except DBAPIError:
            raise
        except Exception as exc:
            if not isinstance(exc, SlotTaken):
                log.exception("new enrolments failed; they run in a batch of their own")
            for e in entered:
                if e.deals:
                    pairs = [(contact_id, e.deals[i]) for i, contact_id in e.rows]
                    enrol_deal_runs(session, e.loaded, now=e.at, pairs=pairs)
                    continue
                contact_ids = [contact_id for _, contact_id in e.rows]
                enrol(session, e.loaded, now=e.at, contact_ids=contact_ids)
            return 0

    # --- due runs ----------------------------------------------------------------------------

    def process_due(self) -> PassStats:
        """Claim and run due enrolments batch by batch; each batch is one transaction."""
        total = PassStats()
        while True:
            stats = self.process_batch()
            total.add(stats)
            if stats.claimed < self.batch_size:
                # A short batch took everything due; rows its steps made due are picked up
                # by the next round of run_until_idle.
                return total

    def process_batch(self, only: int | None = None) -> PassStats:
        try:
            return self._process_batch_again(only)
        except (DBAPIError, TidingsError):
            raise  # the database's trouble (deadlock, lost connection): retry the whole batch
        except Exception:
            if only is not None:
                raise
            # A bug or bad data in one run must not stall every other: run the due ones one
            # by one, and fail those that still raise.
            log.exception("a batch failed; running its enrolments one by one")
            return self._isolate()

    def _process_batch_again(self, only: int | None) -> PassStats:
        """A batch whose new run lost its slot to another worker is rolled back and redone:
        the second time its steps see that run and do not start their own."""
        for _ in range(SLOT_RETRIES - 1):
            try:
                return self._process_batch(only)
            except SlotTaken:
                log.info("a new run lost its slot to another worker; redoing the batch")
        return self._process_batch(only)

    def _isolate(self) -> PassStats:
        total = PassStats()
        now = self.clock.now()
        with self.database.session() as session:
            snapshot = self.registry.refresh(session)
            ids = [run.id for run in self._claim(session, snapshot.active_ids(), now)]
        for enrolment_id in ids:
            try:
                total.add(self.process_batch(only=enrolment_id))
            except (DBAPIError, TidingsError):
                raise
            except Exception as exc:
                with self.database.session() as session:
                    runstore.fail(session, enrolment_id, now, f"{type(exc).__name__}: {exc}")
                total.claimed += 1
        return total

    def _process_batch(self, only: int | None) -> PassStats:
        stats = PassStats()
        with gc_paused(), self.database.session() as session:
            snapshot = self.registry.refresh(session)
            active_ids = snapshot.active_ids()
            if not active_ids:
                return stats
            now = self.clock.now()
            runs = self._claim(session, active_ids, now, only)
            if not runs:
                return stats
            stats.batches, stats.claimed = 1, len(runs)
            use_bulk_page_cache(session)  # enrolment, tag and activity indexes
            # Enrolments started by these runs run in this batch too, except when runs are
            # isolated one by one (a failure must stay with the run that caused it).
            entered: list[Entered] | None = [] if only is None else None
            journal = Journal(now, self.shard)
            ctx = Context(
                session, now, self.registry, journal, send_email=self.send_email, entered=entered
            )
            interpreter.check_status(ctx, runs)
            stats.steps = self._advance(ctx, runs)
        return stats

    def _claim(
        self, session: Session, automation_ids: list[int], now: datetime, only: int | None = None
    ) -> list[Run]:
        return runstore.claim(
            session,
            automation_ids,
            now,
            limit=self.batch_size,
            only=only,
        )

    def _advance(self, ctx: Context, runs: list[Run]) -> int:
        """Goals, then steps, then the write-back of these runs and of the runs they start."""
        executed = interpreter.advance(ctx, runs)
        runstore.write_back(ctx.session, self.registry, runs, ctx.now)
        ctx.journal.write(ctx.session)
        return executed
