"""The engine: trigger matching over the activity stream and set-wise step execution.

One *pass* = match new activities to triggers (creating enrolments), then claim due
enrolments in batches and run them; repeated until nothing is left to do, so work created by a
step (a tag that starts another automation) runs in the same pass.

Durability: a batch is ONE transaction. It claims its rows (PostgreSQL: FOR UPDATE SKIP LOCKED;
SQLite: the write lock of BEGIN IMMEDIATE), runs the steps, writes their effects (tags,
activities, outbox rows) and the enrolments' new positions, and commits. A crash at any point
rolls all of it back, so an effect is never lost nor doubled; the rows are simply claimed again.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Dialect, String, Text, cast, func, select, type_coerce, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.automations import definition as d
from tidings.automations import triggers
from tidings.automations.actions import (
    FAILED,
    PASSED,
    Context,
    EmailSender,
    Outcomes,
    messaging_sender,
    run_action,
)
from tidings.automations.enrolments import (
    ACTIVE,
    ACTIVE_SLOT,
    COMPLETED,
    EXITED,
    Entered,
    SlotTaken,
    enrol,
    is_active,
    released_slot,
    run_slot,
    runs_of,
    start_runs,
    store_started,
)
from tidings.automations.journal import Journal, own_shard
from tidings.automations.models import EngineState, Enrolment
from tidings.automations.registry import Loaded, Registry, Snapshot
from tidings.clock import Clock
from tidings.contacts.models import Contact
from tidings.db.bulk import dialect_insert, in_values
from tidings.db.engine import Database, use_bulk_page_cache
from tidings.db.types import UTCDateTime
from tidings.errors import TidingsError
from tidings.memory import gc_paused
from tidings.segments import condition_sql

log = logging.getLogger(__name__)

CURSOR_KEY = "activity_cursor"
MAX_HOPS = 200  # steps one enrolment may run in one batch before yielding (no wait in a loop)
STATUS_CHANGED = "status_changed"
GAP_SECONDS = 120
SLOT_RETRIES = 3
MAX_GAPS = 10_000


@dataclass(slots=True)
class Run:
    """One claimed enrolment, advanced in memory and written back at the end of the batch."""

    id: int
    automation_id: int
    version: int
    contact_id: int
    step: str
    wait_until: datetime | None
    hops: int
    goals_hit: list[str]
    entered_at: datetime
    state: str = ACTIVE
    wake_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    moving: bool = True  # still has steps to run in this batch
    contact_status: str | None = None
    stored: bool = True  # False: started in this transaction, inserted at its end


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
            state = self._lock_cursor(session)
            if state is None:
                return stats  # another worker is matching right now
            cursor = int(state["id"])
            gaps: dict[str, str] = dict(state.get("gaps", {}))
            upper = session.scalar(select(func.coalesce(func.max(Activity.id), 0))) or 0
            if upper <= cursor and not gaps:
                return stats
            query = select(
                Activity.id, Activity.contact_id, Activity.type, Activity.data, Activity.machine
            ).where(Activity.contact_id.is_not(None))
            wanted = set(snapshot.index) | {STATUS_CHANGED}
            if not snapshot.recheck_ids:
                # Through coalesce: the id range is the way in (by the primary key, in order);
                # SQLite would otherwise read every activity of these types ever, then sort.
                query = query.where(func.coalesce(Activity.type, "").in_(sorted(wanted)))
            rows = list(
                session.connection()
                .execute(  # Core: no ORM row processing
                    query.where(Activity.id > cursor, Activity.id <= upper)
                    .order_by(Activity.id)
                    .limit(self.activity_batch)
                )
                .all()
            )
            new_cursor = rows[-1].id if len(rows) == self.activity_batch else max(upper, cursor)
            now = self.clock.now()
            if not self.database.is_sqlite:
                rows.extend(self._fill_gaps(session, query, cursor, new_cursor, gaps, now))
            stats.matched = len(rows)
            started: dict[tuple[int, int], int] = {}
            entered = self._enrol_matches(session, snapshot, rows, now, started)
            stats.enrolled = sum(len(e.rows) for e in entered)
            self._recheck(session, snapshot, rows, now)
            session.execute(
                update(EngineState)
                .where(EngineState.key == CURSOR_KEY)
                .values(value={"id": new_cursor, "gaps": gaps})
            )
            stats.steps = self._run_entered(session, entered, started, now)
        return stats

    def _run_entered(
        self,
        session: Session,
        entered: list[Entered],
        started: dict[tuple[int, int], int],
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
                contact_ids = [contact_id for _, contact_id in e.rows]
                enrol(session, e.loaded, now=e.at, contact_ids=contact_ids)
            return 0

    def _fill_gaps(
        self,
        session: Session,
        query: Any,
        cursor: int,
        new_cursor: int,
        gaps: dict[str, str],
        now: datetime,
    ) -> list[Any]:
        """PostgreSQL hands out ids before commit, so a transaction that commits late leaves an
        id below the cursor that appears afterwards. Remember such gaps and look at them again
        for GAP_SECONDS (after that the id belonged to a rolled-back transaction)."""
        if new_cursor > cursor:
            present = set(
                session.scalars(
                    select(Activity.id).where(Activity.id > cursor, Activity.id <= new_cursor)
                )
            )
            for missing in range(cursor + 1, new_cursor + 1):
                if missing not in present and len(gaps) < MAX_GAPS:
                    gaps[str(missing)] = now.isoformat()
        if not gaps:
            return []
        waiting = [int(i) for i in gaps if int(i) <= cursor]
        late = list(session.execute(query.where(Activity.id.in_(waiting))).all()) if waiting else []
        seen = (
            set(session.scalars(select(Activity.id).where(Activity.id.in_(waiting))))
            if waiting
            else set()
        )
        for found in seen:
            gaps.pop(str(found), None)
        expiry = now - timedelta(seconds=GAP_SECONDS)
        for key, first_seen in list(gaps.items()):
            if datetime.fromisoformat(first_seen) < expiry:
                del gaps[key]
        return late

    def scan_dates(self) -> PassStats:
        """Date-anniversary triggers: enrol each day's contacts once (the day is remembered)."""
        stats = PassStats()
        with self.database.session() as session:
            snapshot = self.registry.refresh(session)
            dated = [
                loaded
                for loaded in snapshot.current.values()
                if getattr(loaded.definition.trigger, "type", None) == "date_anniversary"
            ]
            if not dated:
                return stats
            today = self.clock.now().date()
            for loaded in dated:
                key = f"dates:{loaded.automation_id}"
                statement = select(EngineState.value).where(EngineState.key == key)
                if not self.database.is_sqlite:
                    statement = statement.with_for_update(skip_locked=True)
                state = session.scalar(statement)
                last = date.fromisoformat(state["day"]) if state else today - timedelta(days=1)
                if last >= today:
                    continue
                trigger: Any = loaded.definition.trigger
                value = Contact.fields[trigger.field].as_string()
                day = last
                while day < today:
                    day += timedelta(days=1)
                    target = day + timedelta(days=trigger.days)
                    stats.enrolled += enrol(
                        session,
                        loaded,
                        now=self.clock.now(),
                        where=func.substr(value, 6, 5) == target.strftime("%m-%d"),
                    )
                session.execute(
                    dialect_insert(session, EngineState)
                    .values(key=key, value={"day": today.isoformat()})
                    .on_conflict_do_update(
                        index_elements=["key"], set_={"value": {"day": today.isoformat()}}
                    )
                )
        return stats

    def _lock_cursor(self, session: Session) -> dict[str, Any] | None:
        statement = select(EngineState.value).where(EngineState.key == CURSOR_KEY)
        if not self.database.is_sqlite:
            statement = statement.with_for_update(skip_locked=True)
        value = session.scalar(statement)
        if value is None:
            if ensure_cursor(session) is False:
                return None  # locked by another worker, or just created by one
            value = session.scalar(statement)
            if value is None:
                return None
        return dict(value)

    def _enrol_matches(
        self,
        session: Session,
        snapshot: Snapshot,
        rows: list[Any],
        now: datetime,
        started: dict[tuple[int, int], int],
    ) -> list[Entered]:
        targets: dict[int, set[int]] = defaultdict(set)
        index = snapshot.index
        for _, contact_id, kind, data, machine in rows:
            for loaded in index.get(kind, ()):
                trigger = loaded.definition.trigger
                if triggers.matches(trigger, kind, data or {}, bool(machine)):
                    targets[loaded.automation_id].add(contact_id)
        return [
            start_runs(
                session,
                snapshot.current[automation_id],
                now=now,
                contact_ids=sorted(contact_ids),
                held=started,
            )
            for automation_id, contact_ids in targets.items()
        ]

    def _recheck(
        self, session: Session, snapshot: Snapshot, rows: list[Any], now: datetime
    ) -> None:
        """Wake enrolments whose goals, condition waits or status rule may now decide."""
        status_changed = {r.contact_id for r in rows if r.type == STATUS_CHANGED}
        if status_changed:
            # Runs of paused automations are checked when they are claimed after resuming.
            self._wake(session, sorted(status_changed), snapshot.active_ids(), now)
        if snapshot.recheck_ids:
            contacts = sorted({r.contact_id for r in rows})
            self._wake(session, contacts, sorted(snapshot.recheck_ids), now)

    def _wake(
        self, session: Session, contact_ids: list[int], automation_ids: list[int], now: datetime
    ) -> None:
        """Due now: the waiting runs of these contacts in these automations."""
        for automation_id in automation_ids:
            waiting = runs_of(
                session,
                automation_id,
                contact_ids,
                Enrolment.id,
                is_active(),
                Enrolment.wake_at > now,
            )
            session.execute(
                update(Enrolment)
                .where(Enrolment.id.in_(waiting))
                .values(wake_at=now)
                .execution_options(synchronize_session=False)
            )

    # --- steps -------------------------------------------------------------------------------

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
                    session.execute(
                        update(Enrolment)
                        .where(Enrolment.id == enrolment_id)
                        .values(
                            state=FAILED,
                            wake_at=None,
                            ended_at=now,
                            end_reason=f"{type(exc).__name__}: {exc}"[:2000],
                            run_slot=released_slot(),
                        )
                    )
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
            self._check_status(session, runs, journal, now)
            stats.steps = self._advance(ctx, runs)
        return stats

    def _advance(self, ctx: Context, runs: list[Run]) -> int:
        """Goals, then steps, then the write-back of these runs and of the runs they start."""
        self._check_goals(ctx, runs)
        executed = self._run_steps(ctx, runs)
        self._settle_exited(ctx, runs)
        self._write_back(ctx.session, runs)
        ctx.journal.write(ctx.session)
        return executed

    def _take_entered(self, ctx: Context, runs: list[Run]) -> list[Run]:
        """The enrolments started so far in this transaction join the runs, at their first step
        (their goals checked first, as for a claimed run); returns them."""
        if not ctx.entered:
            return []
        fresh = [
            Run(
                enrolment_id,
                e.loaded.automation_id,
                e.loaded.version,
                contact_id,
                e.loaded.definition.steps[0].id,
                None,
                0,
                [],
                e.at,
                stored=False,
            )
            for e in ctx.entered
            for enrolment_id, contact_id in e.rows
        ]
        ctx.entered.clear()
        runs.extend(fresh)
        for run in fresh:
            ctx.started_runs[run.id] = run
            if run.id in ctx.exited:  # exited before it ran a step
                self._end(run, EXITED, ctx.now, ctx.exited[run.id])
        self._check_goals(ctx, fresh)
        return fresh

    def _claim(
        self, session: Session, automation_ids: list[int], now: datetime, only: int | None = None
    ) -> list[Run]:
        statement = (
            select(
                Enrolment.id,
                Enrolment.automation_id,
                Enrolment.version,
                Enrolment.contact_id,
                Enrolment.step,
                type_coerce(Enrolment.wait_until, String()),  # as stored: see _Timestamps
                Enrolment.hops,
                # As text: nearly always "[]", which needs no JSON decoding.
                cast(Enrolment.goals_hit, Text),
                type_coerce(Enrolment.entered_at, String()),
                Contact.status,
            )
            .outerjoin(Contact, Contact.id == Enrolment.contact_id)
            .where(
                is_active(),
                Enrolment.wake_at <= now,
                # "+ 0": through the due index in wake_at order, never by automation (SQLite,
                # without statistics, would take every active run of the automation and sort).
                (Enrolment.automation_id + 0).in_(automation_ids),
            )
            .order_by(Enrolment.wake_at, Enrolment.id)
            .limit(self.batch_size)
        )
        if only is not None:
            statement = statement.where(Enrolment.id == only)
        connection = session.connection()
        if not self.database.is_sqlite:
            statement = statement.with_for_update(of=Enrolment, skip_locked=True)
            # Walk the due index in wake_at order and stop after the batch. A bitmap scan (the
            # planner's pick when statistics are missing or stale) reads every due entry on
            # every claim, dead ones included; an index scan also marks the dead entries it
            # passes, so the next claim skips them even before vacuum has run.
            connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        # A Core execution: the ORM's per-row result processing costs more than the rest.
        stamps = _Timestamps(session.get_bind().dialect)
        rows = connection.execute(statement).all()
        if not self.database.is_sqlite:
            connection.exec_driver_sql("SET LOCAL enable_bitmapscan = on")
        return [
            Run(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4] or d.END,
                None if r[5] is None else stamps[r[5]],
                r[6],
                _goals(r[7]),
                stamps[r[8]],
                contact_status=r[9],
            )
            for r in rows
        ]

    def _loaded(self, session: Session, run: Run) -> Loaded:
        return self.registry.version(session, run.automation_id, run.version)

    def _end(self, run: Run, state: str, now: datetime, reason: str | None) -> None:
        run.state, run.moving, run.wake_at = state, False, None
        run.ended_at, run.end_reason = now, reason

    def _check_status(
        self, session: Session, runs: list[Run], journal: Journal, now: datetime
    ) -> None:
        allowed: dict[tuple[int, int], frozenset[str]] = {}
        for run in runs:
            status = run.contact_status
            key = (run.automation_id, run.version)
            if key not in allowed:
                allowed[key] = self._loaded(session, run).allowed
            if status is None:
                self._end(run, EXITED, now, "contact deleted")
            elif status not in allowed[key]:
                reason = f"status {status} is not allowed in this automation"
                self._end(run, EXITED, now, reason)
                journal.count(run.automation_id, run.step, EXITED)

    def _check_goals(self, ctx: Context, runs: list[Run]) -> None:
        groups: dict[tuple[int, int], list[Run]] = defaultdict(list)
        for run in runs:
            if run.moving:
                groups[(run.automation_id, run.version)].append(run)
        for (automation_id, version), group in groups.items():
            loaded = self.registry.version(ctx.session, automation_id, version)
            for goal in loaded.definition.goals:
                candidates = [r for r in group if r.moving and goal.id not in r.goals_hit]
                hits = self._holding(ctx, goal.when, candidates)
                for run in candidates:
                    if run.contact_id not in hits:
                        continue
                    run.goals_hit = [*run.goals_hit, goal.id]
                    self._pass(ctx, automation_id, run.step, [run], goal.jump_to, "goal", goal.id)

    def _holding(self, ctx: Context, condition: Any, runs: list[Run]) -> set[int]:
        if not runs:
            return set()
        session = ctx.session
        ids = sorted({r.contact_id for r in runs})
        query = select(Contact.id).where(
            in_values(session, Contact.id, ids), condition_sql(condition, ctx.now)
        )
        return set(session.scalars(query))

    def _run_steps(self, ctx: Context, runs: list[Run]) -> int:
        executed = 0
        moving = [run for run in runs if run.moving]  # shrinks as runs stop: waits, ends
        for _ in range(MAX_HOPS):
            moving.extend(self._take_entered(ctx, runs))
            groups: dict[tuple[int, int, str], list[Run]] = defaultdict(list)
            for run in moving:
                if run.moving and run.id in ctx.exited:
                    self._end(run, EXITED, ctx.now, ctx.exited[run.id])
                if run.moving:
                    groups[(run.automation_id, run.version, run.step)].append(run)
            if not groups:
                return executed
            for (automation_id, version, step_id), group in groups.items():
                group = [r for r in group if r.id not in ctx.exited]
                if not group:
                    continue
                loaded = self.registry.version(ctx.session, automation_id, version)
                executed += self._step(ctx, loaded, step_id, group)
            moving = [run for group in groups.values() for run in group if run.moving]
        for run in runs:  # a long chain of instant steps: continue in the next batch
            if run.moving:
                run.moving, run.wake_at = False, ctx.now
        return executed

    def _settle_exited(self, ctx: Context, runs: list[Run]) -> None:
        """Runs that another automation exited after they moved in this batch stay exited
        (the SQL exit happened in this transaction; the write-back must not undo it)."""
        for run in runs:
            if run.id in ctx.exited and run.state == ACTIVE:
                self._end(run, EXITED, ctx.now, ctx.exited[run.id])

    def _pass(
        self,
        ctx: Context,
        automation_id: int,
        step_id: str,
        runs: list[Run],
        to: str,
        outcome: str = PASSED,
        detail: str | None = None,
    ) -> None:
        """These runs leave `step_id` for `to` with the same outcome (recorded for each)."""
        ctx.journal.add_all(runs, automation_id, step_id, outcome, detail)
        for run in runs:
            run.hops += 1
            run.wait_until = None
        if to == d.END:
            for run in runs:
                self._end(run, COMPLETED, ctx.now, None)
        else:
            for run in runs:
                run.step = to

    def _pass_each(
        self,
        ctx: Context,
        automation_id: int,
        step_id: str,
        moves: Sequence[tuple[Run, str, str, str | None]],
    ) -> None:
        """Runs leaving `step_id` each its own way: (run, to, outcome, detail), grouped."""
        ways: dict[tuple[str, str, str | None], list[Run]] = defaultdict(list)
        for run, to, outcome, detail in moves:
            ways[(to, outcome, detail)].append(run)
        for (to, outcome, detail), runs in ways.items():
            self._pass(ctx, automation_id, step_id, runs, to, outcome, detail)

    def _step(
        self,
        ctx: Context,
        loaded: Loaded,
        step_id: str,
        group: list[Run],
    ) -> int:
        now = ctx.now
        definition = loaded.definition
        aid = loaded.automation_id
        if step_id == d.END or step_id not in definition._index():
            for run in group:
                reason = None if step_id == d.END else f"step {step_id!r} no longer exists"
                self._end(run, COMPLETED if step_id == d.END else FAILED, now, reason)
            return 0
        step = definition.step(step_id)
        following = definition.next_of(step_id)
        if isinstance(step, d.WaitStep):
            return self._wait(ctx, loaded, step, group)
        if isinstance(step, d.EndStep):
            self._pass(ctx, aid, step_id, group, d.END)
        elif isinstance(step, d.GotoStep):
            self._pass(ctx, aid, step_id, group, step.goto)
        elif isinstance(step, d.IfStep):
            holding = self._holding(ctx, step.if_, group)
            yes = [r for r in group if r.contact_id in holding]
            no = [r for r in group if r.contact_id not in holding]
            self._pass(ctx, aid, step_id, yes, step.then or following, PASSED, "then")
            self._pass(ctx, aid, step_id, no, step.else_ or following, PASSED, "else")
        elif isinstance(step, d.SplitStep):
            moves = []
            for run in group:
                to = split_branch(aid, run.contact_id, step).to
                moves.append((run, to, PASSED, f"to {to}"))
            self._pass_each(ctx, aid, step_id, moves)
        else:
            # A failed action does not stop the run: it is recorded and the run continues,
            # like ActiveCampaign's "skip" policy (a refused send is recorded the same way).
            outcomes: Outcomes = run_action(ctx, loaded, step, group)
            if outcomes:
                self._pass_each(
                    ctx,
                    aid,
                    step_id,
                    [(run, following, *outcomes.get(run.id, (PASSED, None))) for run in group],
                )
            else:
                self._pass(ctx, aid, step_id, group, following)
        return len(group)

    def _wait(self, ctx: Context, loaded: Loaded, step: d.WaitStep, group: list[Run]) -> int:
        now, wait = ctx.now, step.wait
        aid, following = loaded.automation_id, loaded.definition.next_of(step.id)
        deadline = _deadline(wait, now)
        for run in group:
            if run.wait_until is None:
                run.wait_until = deadline(run)
        held: list[Run] = []
        if wait.condition is not None:
            holding = self._holding(ctx, wait.condition, group)
            held = [r for r in group if r.contact_id in holding]
            self._pass(ctx, aid, step.id, held, following, PASSED, "condition held")
            group = [r for r in group if r.contact_id not in holding]
        over: list[Run] = []
        for run in group:
            assert run.wait_until is not None
            if now >= run.wait_until:
                over.append(run)
            else:
                run.moving, run.wake_at = False, run.wait_until
        if wait.condition is not None:
            to = wait.on_timeout or following
            self._pass(ctx, aid, step.id, over, to, "timed_out", "time limit reached")
            return len(over) + len(held)
        self._pass(ctx, aid, step.id, over, following)
        return len(over)

    def _write_back(self, session: Session, runs: list[Run]) -> None:
        """Runs that moved together share their new values: one UPDATE per shape of values.
        Runs started in this transaction are inserted, as they are now."""
        shapes: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        new: list[tuple[Any, ...]] = []
        for run in runs:
            if run.moving:  # not reachable: _run_steps settles every run
                run.moving, run.wake_at = False, self.clock.now()
            if not run.stored:
                new.append(self._new_row(session, run))
                continue
            shape = (
                run.state,
                run.step,
                run.wake_at,
                run.wait_until,
                run.hops,
                tuple(run.goals_hit),
                run.ended_at,
                run.end_reason,
            )
            shapes[shape].append(run.id)
        for shape, ids in shapes.items():
            state, step, wake_at, wait_until, hops, goals, ended_at, end_reason = shape
            values: dict[str, Any] = {
                "state": state,
                "step": step,
                "wake_at": wake_at,
                "wait_until": wait_until,
                "hops": hops,
                "goals_hit": list(goals),
                "ended_at": ended_at,
                "end_reason": end_reason,
            }
            if state != ACTIVE:
                values["run_slot"] = released_slot()
            session.execute(
                update(Enrolment)
                .where(in_values(session, Enrolment.id, ids))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        store_started(session, new)

    def _new_row(self, session: Session, run: Run) -> tuple[Any, ...]:
        """A run started in this transaction as stored (enrolments.STARTED_COLUMNS)."""
        slot = run_slot(self._loaded(session, run))
        return (
            run.id,
            run.automation_id,
            run.version,
            run.contact_id,
            run.state,
            run.step,
            run.wake_at,
            run.hops,
            run.goals_hit,
            None if run.state != ACTIVE and slot == ACTIVE_SLOT else slot,
            run.entered_at,
            run.wait_until,
            run.ended_at,
            run.end_reason,
        )


class _Timestamps(dict[Any, datetime]):
    """Stored timestamps converted once each: a batch's runs mostly share a few (they entered
    or started waiting together)."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__()
        self.dialect = dialect

    def __missing__(self, stored: Any) -> datetime:
        value = UTCDateTime().process_result_value(stored, self.dialect)
        assert value is not None
        self[stored] = value
        return value


def _goals(stored: str | None) -> list[str]:
    if not stored or stored == "[]":
        return []
    return list(orjson.loads(stored))


def _deadline(wait: d.Wait, now: datetime) -> Callable[[Run], datetime]:
    """When a run that starts this wait now may leave it (worked out once per group)."""
    if wait.until is not None:
        until = wait.until
        return lambda run: until
    if wait.after_entry is not None:
        after = wait.after_entry.delta
        return lambda run: run.entered_at + after
    if wait.condition is not None:
        assert wait.timeout is not None
        limit = now + wait.timeout.delta
        return lambda run: limit
    duration = wait.duration
    assert duration is not None
    end = now + duration
    return lambda run: end


def split_branch(automation_id: int, contact_id: int, step: d.SplitStep) -> d.Branch:
    """Deterministic per (automation, contact, step): stable as long as the percentages are."""
    digest = hashlib.sha256(f"{automation_id}:{contact_id}:{step.id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * 100
    bound = 0.0
    for branch in step.split:
        bound += branch.percent
        if point < bound:
            return branch
    return step.split[-1]


def ensure_cursor(session: Session) -> bool:
    """Create the activity cursor at the newest activity (old history starts nothing)."""
    upper = session.scalar(select(func.coalesce(func.max(Activity.id), 0))) or 0
    result = session.execute(
        dialect_insert(session, EngineState)
        .values(key=CURSOR_KEY, value={"id": upper})
        .on_conflict_do_nothing()
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
