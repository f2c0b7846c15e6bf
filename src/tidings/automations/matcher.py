"""The trigger matcher: which contacts the activity log (and the calendar) starts in which
automation, and which waiting runs it wakes.

- The activity cursor (`engine_state` row "activity_cursor"): the id up to which activities
  have been matched. One worker matches at a time (PostgreSQL: the row is locked with SKIP
  LOCKED, and the others skip matching; SQLite: one writer anyway).
- Gaps (PostgreSQL only): ids below the cursor that were not visible yet, because a
  transaction that took its id earlier commits later. They are looked at again for
  GAP_SECONDS, so a late commit is never missed.
- Matching: the snapshot's index {activity type -> automations} and each trigger's predicate
  (tidings.automations.triggers) turn the activities into contacts per automation; the runs
  this starts get reserved ids (`start_runs`) and the engine runs them in the same transaction.
- Rechecks: a status change, or any activity of a contact in an automation with goals or
  condition waits, makes that contact's waiting runs due now, so the interpreter looks again.
- Daily triggers (date anniversaries): each automation's last scanned day is remembered, and
  every day since is enrolled once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.automations import triggers
from tidings.automations.deal_triggers import DealNames
from tidings.automations.enrolments import (
    Entered,
    enrol,
    is_active,
    runs_of,
    start_deal_runs,
    start_runs,
)
from tidings.automations.models import EngineState, Enrolment
from tidings.automations.registry import Snapshot
from tidings.clock import Clock
from tidings.db.bulk import dialect_insert, in_values
from tidings.db.dialect import dialect_of
from tidings.deals.models import DealContact

CURSOR_KEY = "activity_cursor"
STATUS_CHANGED = "status_changed"
GAP_SECONDS = 120
MAX_GAPS = 10_000


@dataclass(slots=True)
class Matched:
    """What one round of matching found: the runs it started (not stored yet) and the
    reserved ids they hold, for the engine to run in the same transaction."""

    activities: int
    entered: list[Entered]
    # (automation, contact[, deal]) -> reserved enrolment id
    started: dict[tuple[int, ...], int]
    now: datetime

    @property
    def enrolled(self) -> int:
        return sum(len(e.rows) for e in self.entered)


def match_activities(
    session: Session, snapshot: Snapshot, clock: Clock, *, limit: int
) -> Matched | None:
    """Match up to `limit` new activities (and late ones in the gaps) and move the cursor past
    them; None when another worker is matching or nothing is new."""
    state = _lock_cursor(session)
    if state is None:
        return None  # another worker is matching right now
    cursor = int(state["id"])
    gaps: dict[str, str] = dict(state.get("gaps", {}))
    upper = session.scalar(select(func.coalesce(func.max(Activity.id), 0))) or 0
    if upper <= cursor and not gaps:
        return None
    query = select(
        Activity.id,
        Activity.contact_id,
        Activity.type,
        Activity.data,
        Activity.machine,
        Activity.deal_id,
    ).where(or_(Activity.contact_id.is_not(None), Activity.deal_id.is_not(None)))
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
            .limit(limit)
        )
        .all()
    )
    new_cursor = rows[-1].id if len(rows) == limit else max(upper, cursor)
    now = clock.now()
    if dialect_of(session).concurrent_writers:
        rows.extend(fill_gaps(session, query, cursor, new_cursor, gaps, now))
    started: dict[tuple[int, ...], int] = {}
    entered = _enrol_matches(session, snapshot, rows, now, started)
    _recheck(session, snapshot, rows, now)
    session.execute(
        update(EngineState)
        .where(EngineState.key == CURSOR_KEY)
        .values(value={"id": new_cursor, "gaps": gaps})
    )
    return Matched(len(rows), entered, started, now)


def ensure_cursor(session: Session) -> bool:
    """Create the activity cursor at the newest activity (old history starts nothing)."""
    upper = session.scalar(select(func.coalesce(func.max(Activity.id), 0))) or 0
    result = session.execute(
        dialect_insert(session, EngineState)
        .values(key=CURSOR_KEY, value={"id": upper})
        .on_conflict_do_nothing()
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def scan_dates(session: Session, snapshot: Snapshot, clock: Clock) -> int:
    """Daily triggers: enrol each day's contacts once (the last day scanned is remembered per
    automation); returns how many were enrolled."""
    dated = [
        loaded
        for loaded in snapshot.current.values()
        if triggers.is_daily(loaded.definition.trigger)
    ]
    if not dated:
        return 0
    enrolled = 0
    today = clock.now().date()
    for loaded in dated:
        key = f"dates:{loaded.automation_id}"
        statement = select(EngineState.value).where(EngineState.key == key)
        state = session.scalar(dialect_of(session).claim(statement))
        last = date.fromisoformat(state["day"]) if state else today - timedelta(days=1)
        if last >= today:
            continue
        day = last
        while day < today:
            day += timedelta(days=1)
            enrolled += enrol(
                session,
                loaded,
                now=clock.now(),
                where=triggers.enrols_on(loaded.definition.trigger, day),
            )
        session.execute(
            dialect_insert(session, EngineState)
            .values(key=key, value={"day": today.isoformat()})
            .on_conflict_do_update(
                index_elements=["key"], set_={"value": {"day": today.isoformat()}}
            )
        )
    return enrolled


def _lock_cursor(session: Session) -> dict[str, Any] | None:
    statement = select(EngineState.value).where(EngineState.key == CURSOR_KEY)
    statement = dialect_of(session).claim(statement)
    value = session.scalar(statement)
    if value is None:
        if ensure_cursor(session) is False:
            return None  # locked by another worker, or just created by one
        value = session.scalar(statement)
        if value is None:
            return None
    return dict(value)


def fill_gaps(
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


def _enrol_matches(
    session: Session,
    snapshot: Snapshot,
    rows: list[Any],
    now: datetime,
    started: dict[tuple[int, ...], int],
) -> list[Entered]:
    targets: dict[int, set[int]] = defaultdict(set)
    deal_targets: dict[int, set[tuple[int, int]]] = defaultdict(set)
    all_contacts: dict[int, set[int]] = defaultdict(set)  # automation -> deals (contacts: all)
    index = snapshot.index
    names: DealNames | None = None
    for _, contact_id, kind, data, machine, deal_id in rows:
        for loaded in index.get(kind, ()):
            trigger = loaded.definition.trigger
            if not triggers.is_deal(trigger):
                if contact_id is not None and triggers.matches(
                    trigger, kind, data or {}, bool(machine)
                ):
                    targets[loaded.automation_id].add(contact_id)
                continue
            if deal_id is None:
                continue
            names = names or DealNames.load(session)  # once per round, when needed
            if not triggers.matches_deal(trigger, kind, data or {}, names):
                continue
            if getattr(trigger, "contacts", "primary") == "all":
                all_contacts[loaded.automation_id].add(deal_id)
            elif contact_id is not None:
                deal_targets[loaded.automation_id].add((contact_id, deal_id))
    for automation_id, deal_ids in all_contacts.items():
        deal_targets[automation_id].update(_contacts_of(session, deal_ids))
    entered = [
        start_runs(
            session,
            snapshot.current[automation_id],
            now=now,
            contact_ids=sorted(contact_ids),
            held=started,
        )
        for automation_id, contact_ids in targets.items()
    ]
    entered.extend(
        start_deal_runs(
            session, snapshot.current[automation_id], now=now, pairs=pairs, held=started
        )
        for automation_id, pairs in deal_targets.items()
    )
    return entered


def _contacts_of(session: Session, deal_ids: set[int]) -> list[tuple[int, int]]:
    """(contact, deal) for every contact of these deals, the primary one included."""
    statement = select(DealContact.contact_id, DealContact.deal_id).where(
        in_values(session, DealContact.deal_id, sorted(deal_ids))
    )
    return [(int(c), int(d)) for c, d in session.execute(statement).all()]


def _recheck(session: Session, snapshot: Snapshot, rows: list[Any], now: datetime) -> None:
    """Wake enrolments whose goals, condition waits or status rule may now decide."""
    status_changed = {
        r.contact_id for r in rows if r.type == STATUS_CHANGED and r.contact_id is not None
    }
    if status_changed:
        # Runs of paused automations are checked when they are claimed after resuming.
        _wake(session, sorted(status_changed), snapshot.active_ids(), now)
    if snapshot.recheck_ids:
        contacts = {r.contact_id for r in rows if r.contact_id is not None}
        # A deal's change may decide a condition about it for any of its contacts' runs.
        deal_ids = {r.deal_id for r in rows if r.deal_id is not None}
        if deal_ids:
            contacts.update(c for c, _ in _contacts_of(session, deal_ids))
        _wake(session, sorted(contacts), sorted(snapshot.recheck_ids), now)


def _wake(
    session: Session, contact_ids: list[int], automation_ids: list[int], now: datetime
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
