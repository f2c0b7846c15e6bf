"""Deal scores kept current as time passes and activities arrive (run by the worker).

A deal write rescores that deal in its own transaction (deals.service, deals.moves); what
changes a score without touching the deal is handled here, set-wise, in passes:

- **Activities**: the contacts with activities past the score cursor (an engine_state row)
  have their deals rescored by every rule that asks about the contact ("contact opened in the
  last 7 days", a tag, a field): one refresh over `deals whose primary contact is among
  them`, a handful of statements per rule, however many activities arrived. On PostgreSQL an
  id taken by a transaction that commits late can appear below the cursor; each pass looks
  back OVERLAP ids again (a refresh changes nothing where nothing changed).
- **Expiry** ("points last 30 days"): expired points are taken off at most every
  EXPIRE_EVERY of clock time.
- **Time windows**: a rule whose condition reads a relative window (`within_days`,
  `not_within_days`) can stop (or start) holding with no activity at all (the last open is
  now 8 days old); such rules are re-evaluated over every deal, a sweep starting at most every
  WINDOW_EVERY and going WINDOW_CHUNK deals (by id) per pass, so that no pass holds the write
  lock for long however many deals there are.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.activities.service import Cause
from tidings.automations.models import EngineState
from tidings.clock import Clock
from tidings.db.bulk import dialect_insert
from tidings.db.dialect import dialect_of
from tidings.db.engine import Database
from tidings.deals import scoring
from tidings.deals.models import Deal
from tidings.deals.timeline import DealActivity

CURSOR_KEY = "deal_score_cursor"
BATCH = 20_000  # activities per pass
OVERLAP = 1_000  # ids looked at again (PostgreSQL: late commits below the cursor)
EXPIRE_EVERY = timedelta(minutes=1)
WINDOW_EVERY = timedelta(hours=1)
WINDOW_CHUNK = 50_000
WINDOW_KEYS = frozenset({"within_days", "not_within_days"})


def keep_scores_current(database: Database, clock: Clock, *, batch: int = BATCH) -> bool:
    """One pass in its own transaction; True when activities may be left for another."""
    with database.session() as session:
        return score_pass(session, clock.now(), batch=batch)


def score_pass(session: Session, now: datetime, *, batch: int) -> bool:
    state = _locked_state(session)
    if state is None:
        return False  # another worker is at it
    cursor = int(state["id"])
    upper = int(session.scalar(select(func.coalesce(func.max(Activity.id), 0))) or 0)
    more = False
    if upper > cursor:
        end = min(upper, cursor + batch)
        more = end < upper
        low = max(0, cursor - OVERLAP) if dialect_of(session).concurrent_writers else cursor
        _rescore_contacts_of(session, low, end, now)
        state["id"] = end
    if _due(state, "expired_at", now, EXPIRE_EVERY):
        scoring.expire_scores(session, now, cause=Cause.SYSTEM)
    if "window_deal" in state or _due(state, "windows_at", now, WINDOW_EVERY):
        more = _sweep_windows(session, state, now) or more
    session.execute(update(EngineState).where(EngineState.key == CURSOR_KEY).values(value=state))
    return more


def _rescore_contacts_of(session: Session, low: int, high: int, now: datetime) -> None:
    """Rescore, by the rules that ask about contacts, the deals whose primary contact has an
    activity with an id in (low, high]."""
    contacts = (
        select(Activity.contact_id)
        .where(
            Activity.id > low,
            Activity.id <= high,
            Activity.contact_id.is_not(None),
            # what a refresh writes itself: nothing about the contact changed
            Activity.type != DealActivity.SCORE_CHANGED.value,
        )
        .distinct()
        .scalar_subquery()
    )
    deals = select(Deal.id).where(Deal.contact_id.in_(contacts))
    scoring.refresh_scores(session, deals, now, cause=Cause.SYSTEM, about_contact=True)


def _sweep_windows(session: Session, state: dict[str, Any], now: datetime) -> bool:
    """The next WINDOW_CHUNK deals of a sweep re-evaluated by the rules with a relative
    window; True while the sweep goes on."""
    after = int(state.pop("window_deal", 0))
    last = session.scalar(
        select(func.max(Deal.id)).where(
            Deal.id.in_(
                select(Deal.id).where(Deal.id > after).order_by(Deal.id).limit(WINDOW_CHUNK)
            )
        )
    )
    if last is None:
        return False  # the sweep is over
    chunk = select(Deal.id).where(Deal.id > after, Deal.id <= last)
    scoring.refresh_scores(
        session, chunk, now, cause=Cause.SYSTEM, only=lambda r: reads_relative_time(r.condition)
    )
    state["window_deal"] = last
    return True


def reads_relative_time(condition: Any) -> bool:
    """Whether a stored condition holds a window relative to now (so time alone changes it)."""
    if isinstance(condition, dict):
        return bool(WINDOW_KEYS & condition.keys()) or any(
            reads_relative_time(v) for v in condition.values()
        )
    if isinstance(condition, list):
        return any(reads_relative_time(v) for v in condition)
    return False


def _due(state: dict[str, Any], key: str, now: datetime, every: timedelta) -> bool:
    """Whether `every` has passed since the time under `key` (recording now when it has)."""
    last = state.get(key)
    if last is not None and datetime.fromisoformat(last) + every > now:
        return False
    state[key] = now.isoformat()
    return True


def _locked_state(session: Session) -> dict[str, Any] | None:
    """The score cursor's row, locked (PostgreSQL: skipped when another worker holds it);
    created at the newest activity the first time (old history changes no score)."""
    statement = dialect_of(session).claim(
        select(EngineState.value).where(EngineState.key == CURSOR_KEY)
    )
    value = session.scalar(statement)
    if value is None:
        upper = session.scalar(select(func.coalesce(func.max(Activity.id), 0))) or 0
        session.execute(
            dialect_insert(session, EngineState)
            .values(key=CURSOR_KEY, value={"id": upper})
            .on_conflict_do_nothing()
        )
        value = session.scalar(statement)
    return None if value is None else dict(value)
