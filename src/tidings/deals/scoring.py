"""Deal scoring: rules that add or subtract points while their condition holds for a deal.

A rule is a condition in the segment language (tidings.segments), extended by comparisons on
the deal itself (`{"deal": {"field": "value", "op": "gte", "value": 1000000}}`); every other
kind of condition asks about the deal's primary contact (`{"event": {"type": "email_opened",
"within_days": 7}}`: its contact opened an email in the last 7 days).

What a score is:
- A *match* of a rule starts when its condition is first found to hold for a deal. The rule's
  points count while the condition keeps holding; with `expires_after_days` N, only for the
  first N days of the match ("points last N days"). When the condition stops holding the
  match ends, and if it holds again later a new match starts and earns the points again.
- A deal's score is the sum of the points its matches count now, plus direct adjustments
  (`adjust_scores`, the automation action "adjust deal score").
- Conditions are evaluated at a refresh, never per row in Python: when a rule is created or
  changed (every deal), when a deal is written (that deal), on demand for a set of deals
  (`refresh_scores`, which automations call as activities arrive) and for expiries
  (`expire_scores`). Each refresh is a handful of set-based statements per rule, and writes a
  deal_score_changed activity only for deals whose score changed.

How: deal_score_matches keeps, per (rule, deal), whether the condition held at the last
refresh and the points the match has added to deals.score. A refresh first brings the
`holds` flags up to date (one UPDATE and one INSERT ... SELECT per rule), then moves every
score by the difference between the points its matches should count and those they do
(one INSERT ... SELECT of activities, one UPDATE ... FROM of deals), then records the new
points and drops ended matches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    false,
    func,
    insert,
    literal,
    not_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.activities.service import DEAL_ACTIVITY_COLUMNS, Cause, record_select
from tidings.contacts.models import Contact
from tidings.db.bulk import dialect_insert, in_values
from tidings.db.engine import use_bulk_page_cache
from tidings.db.sqlfunc import json_object
from tidings.deals.fields import field_definitions
from tidings.deals.models import Deal, ScoreMatch, ScoringRule
from tidings.deals.repository import get_row
from tidings.deals.timeline import DealActivity, deal_row, record_rows
from tidings.errors import Conflict, field_error
from tidings.segments.conditions import Condition, DealCondition, parse_condition, walk
from tidings.segments.service import check_fields
from tidings.segments.sql import asks_about_contact, deal_condition_sql

MAX_POINTS = 1_000_000
MAX_EXPIRY_DAYS = 36_600
NO_SYNC = {"synchronize_session": False}

Deals = Sequence[int] | Select[*tuple[Any, ...]]


def parse_rule_condition(session: Session, obj: Any) -> Condition:
    """A rule's condition, validated against the contact and deal field definitions."""
    condition = parse_condition(obj, deal=True)
    check_fields(session, condition, deal_fields=field_definitions(session))
    return condition


def _points(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < abs(value) <= MAX_POINTS:
        raise field_error(
            "points", f"must be a whole number from -{MAX_POINTS} to {MAX_POINTS}, not 0"
        )
    return value


def _expiry(value: int | None) -> int | None:
    if value is not None and not 0 < value <= MAX_EXPIRY_DAYS:
        raise field_error("expires_after_days", f"must be from 1 to {MAX_EXPIRY_DAYS}")
    return value


def _name(session: Session, raw: str, exclude_id: int | None = None) -> str:
    name = raw.strip()
    if not name:
        raise field_error("name", "must not be blank")
    clash = session.scalar(select(ScoringRule.id).where(ScoringRule.name == name))
    if clash is not None and clash != exclude_id:
        raise Conflict(f"a scoring rule named {name!r} already exists")
    return name


def get_rule(session: Session, rule_id: int) -> ScoringRule:
    return get_row(session, ScoringRule, rule_id, "scoring rule")


def list_rules(session: Session) -> Sequence[ScoringRule]:
    return session.scalars(select(ScoringRule).order_by(ScoringRule.id)).all()


def create_rule(
    session: Session,
    name: str,
    condition: Any,
    points: int,
    *,
    expires_after_days: int | None = None,
    active: bool = True,
    now: datetime,
    cause: str = Cause.API,
) -> ScoringRule:
    """Create a rule and score every deal by it."""
    parse_rule_condition(session, condition)
    rule = ScoringRule(
        name=_name(session, name),
        condition=condition,
        points=_points(points),
        expires_after_days=_expiry(expires_after_days),
        active=active,
        created_at=now,
        updated_at=now,
    )
    session.add(rule)
    session.flush()
    if rule.active and rule.points and rule.expires_after_days != 0:
        _score_new_rule(session, rule, now=now, cause=cause)
    else:  # its matches count nothing: only the holds flags to record
        recompute_rule(session, rule, now=now, cause=cause)
    return rule


def _score_new_rule(session: Session, rule: ScoringRule, *, now: datetime, cause: str) -> None:
    """What recompute_rule does for a rule that has no matches yet and whose new matches are
    live, set-wise in three statements: every match it starts moves its deal's score by the
    rule's points, so the matches are written with their points already counted (no grouped
    difference, no second pass over them), then the activities and the scores follow from a
    join with them."""
    use_bulk_page_cache(session)
    condition = parse_condition(rule.condition, deal=True)
    holds = deal_condition_sql(condition, now)
    starting = (
        _candidates(condition, None)
        .where(holds)
        .with_only_columns(
            literal(rule.id),
            Deal.id,
            literal(now, ScoreMatch.matched_at.type),
            true(),
            literal(rule.points),
        )
    )
    session.execute(
        insert(ScoreMatch).from_select(
            ["rule_id", "deal_id", "matched_at", "holds", "points"], starting
        )
    )
    matched = and_(ScoreMatch.rule_id == rule.id, ScoreMatch.deal_id == Deal.id)
    record_select(
        session,
        DEAL_ACTIVITY_COLUMNS,
        select(
            Deal.contact_id,
            literal(DealActivity.SCORE_CHANGED.value),
            literal(cause),
            literal(now, Activity.occurred_at.type),
            json_object(literal("old"), Deal.score, literal("new"), Deal.score + rule.points),
            Deal.id,
        ).join(ScoreMatch, matched),
    )
    session.execute(
        update(Deal)
        .where(Deal.id.in_(select(ScoreMatch.deal_id).where(ScoreMatch.rule_id == rule.id)))
        .values(score=Deal.score + rule.points)
        .execution_options(**NO_SYNC)
    )


def _candidates(condition: Condition, deals: ColumnElement[bool] | None) -> Select[Any]:
    """The deals a condition is evaluated over (with their contact if it asks about it)."""
    candidates = select(Deal.id)
    if asks_about_contact(condition):
        candidates = candidates.outerjoin(Contact, Contact.id == Deal.contact_id)
    if deals is not None:
        candidates = candidates.where(deals)
    return candidates


_UNSET: Any = object()


def update_rule(
    session: Session,
    rule: ScoringRule,
    *,
    now: datetime,
    cause: str = Cause.API,
    name: str | None = None,
    condition: Any = _UNSET,
    points: int | None = None,
    expires_after_days: int | None = _UNSET,
    active: bool | None = None,
) -> ScoringRule:
    """Change a rule and rescore every deal by it: a new condition re-evaluates the matches;
    new points, a new expiry or (de)activation move the scores of the deals it matches."""
    if name is not None:
        rule.name = _name(session, name, exclude_id=rule.id)
    if condition is not _UNSET:
        parse_rule_condition(session, condition)
        rule.condition = condition
    if points is not None:
        rule.points = _points(points)
    if expires_after_days is not _UNSET:
        rule.expires_after_days = _expiry(expires_after_days)
    if active is not None:
        rule.active = active
    rule.updated_at = now
    session.flush()
    recompute_rule(session, rule, now=now, cause=cause)
    return rule


def delete_rule(
    session: Session, rule: ScoringRule, *, now: datetime, cause: str = Cause.API
) -> None:
    """Take the rule's points off every deal, then delete it."""
    _apply(session, [_Counted(rule.id, 0, None)], now=now, cause=cause, where=None)
    session.execute(delete(ScoreMatch).where(ScoreMatch.rule_id == rule.id))
    session.delete(rule)
    session.flush()


def recompute_rule(
    session: Session, rule: ScoringRule, *, now: datetime, cause: str = Cause.SYSTEM
) -> None:
    """Re-evaluate one rule over every deal (after it changed)."""
    use_bulk_page_cache(session)
    if rule.active:
        _sync(session, rule, parse_condition(rule.condition, deal=True), now=now, deals=None)
    _apply(session, [_counted(rule)], now=now, cause=cause, where=None)


def refresh_scores(
    session: Session,
    deals: Deals,
    now: datetime,
    *,
    cause: str = Cause.SYSTEM,
    changed: frozenset[str] | None = None,
    about_contact: bool = False,
    only: Callable[[ScoringRule], bool] | None = None,
) -> None:
    """Re-evaluate every active rule for these deals (ids, or a SELECT of deal ids) and move
    their scores: what a deal write or an arriving activity calls. `changed`: only the deal
    fields (as conditions name them) that changed, so rules that cannot see them are skipped
    (None: any rule may have changed). `about_contact`: only the rules that ask about the
    primary contact (its behaviour changed, not the deal: deals.scorekeeper). `only`: only the
    rules it accepts."""
    if isinstance(deals, Sequence) and not deals:
        return
    rules: list[tuple[ScoringRule, Condition]] = []
    for rule in list_rules(session):
        if not rule.active or (only is not None and not only(rule)):
            continue
        condition = parse_condition(rule.condition, deal=True)
        if about_contact and not asks_about_contact(condition):
            continue
        if changed is None or changed & deal_fields_of(condition):
            rules.append((rule, condition))
    if not rules:
        return
    for rule, condition in rules:
        _sync(session, rule, condition, now=now, deals=deals)
    where = _in(session, ScoreMatch.deal_id, deals)
    _apply(session, [_counted(r) for r, _ in rules], now=now, cause=cause, where=where)


def deal_fields_of(condition: Condition) -> frozenset[str]:
    """The deal fields a condition compares."""
    return frozenset(n.item.field for n in walk(condition) if isinstance(n, DealCondition))


def expire_scores(session: Session, now: datetime, *, cause: str = Cause.SYSTEM) -> None:
    """Take off the points of matches whose time ran out (for a periodic caller)."""
    for rule in list_rules(session):
        if rule.expires_after_days is None:
            continue
        cutoff = now - timedelta(days=rule.expires_after_days)
        ran_out = and_(ScoreMatch.matched_at <= cutoff, ScoreMatch.points != 0)
        _apply(session, [_counted(rule)], now=now, cause=cause, where=ran_out)


def adjust_scores(session: Session, deals: Deals, by: int, *, now: datetime, cause: str) -> None:
    """Add `by` points (negative: subtract) to these deals' scores, outside any rule."""
    if by == 0:
        return
    chosen = select(Deal.id, Deal.contact_id, Deal.score).where(_in(session, Deal.id, deals))
    rows = session.execute(chosen).all()
    record_rows(
        session,
        [
            deal_row(i, c, DealActivity.SCORE_CHANGED, cause, now, {"old": s, "new": s + by})
            for i, c, s in rows
        ],
    )
    session.execute(
        update(Deal)
        .where(_in(session, Deal.id, deals))
        .values(score=Deal.score + by)
        .execution_options(**NO_SYNC)
    )


@dataclass(frozen=True, slots=True)
class ScoreLine:
    rule_id: int
    rule: str
    points: int
    matched_at: datetime
    holds: bool


def explain(session: Session, deal_id: int) -> list[ScoreLine]:
    """The rule matches behind a deal's score, as of its last refresh."""
    rows = session.execute(
        select(ScoreMatch, ScoringRule.name)
        .join(ScoringRule, ScoringRule.id == ScoreMatch.rule_id)
        .where(ScoreMatch.deal_id == deal_id)
        .order_by(ScoreMatch.rule_id)
    )
    return [ScoreLine(m.rule_id, name, m.points, m.matched_at, m.holds) for m, name in rows]


def forget_deals(session: Session, deal_ids: Sequence[int]) -> None:
    """Drop the matches of deleted deals (the table has no foreign keys)."""
    session.execute(delete(ScoreMatch).where(in_values(session, ScoreMatch.deal_id, deal_ids)))


# ---- the set-based core ----------------------------------------------------------------------


def _in(session: Session, column: Any, deals: Deals) -> ColumnElement[bool]:
    if isinstance(deals, Select):
        return column.in_(deals)  # type: ignore[no-any-return]
    return in_values(session, column, list(deals))


def _sync(
    session: Session, rule: ScoringRule, condition: Condition, *, now: datetime, deals: Deals | None
) -> None:
    """Bring the rule's matches up to date: end those whose condition no longer holds, start
    those where it newly holds."""
    holds = deal_condition_sql(condition, now)
    candidates = _candidates(condition, None if deals is None else _in(session, Deal.id, deals))
    session.execute(
        update(ScoreMatch)
        .where(
            ScoreMatch.rule_id == rule.id,
            ScoreMatch.holds == true(),
            ScoreMatch.deal_id.in_(candidates.where(not_(holds))),
        )
        .values(holds=False)
        .execution_options(**NO_SYNC)
    )
    starting = candidates.where(holds).with_only_columns(
        literal(rule.id),
        Deal.id,
        literal(now, ScoreMatch.matched_at.type),
        true(),
        literal(0),
    )
    # ON CONFLICT, not NOT EXISTS: an anti-join planned while the table looked empty (stale
    # statistics after a big insert) turned into a scan of it per deal on PostgreSQL.
    session.execute(
        dialect_insert(session, ScoreMatch)
        .from_select(["rule_id", "deal_id", "matched_at", "holds", "points"], starting)
        .on_conflict_do_nothing()
    )


@dataclass(frozen=True, slots=True)
class _Counted:
    """How a rule's matches count: its points (0 when inactive or deleted) and expiry."""

    rule_id: int
    points: int
    expires_after_days: int | None


def _counted(rule: ScoringRule) -> _Counted:
    return _Counted(rule.id, rule.points if rule.active else 0, rule.expires_after_days)


def _apply(
    session: Session,
    rules: Sequence[_Counted],
    *,
    now: datetime,
    cause: str,
    where: ColumnElement[bool] | None,
) -> None:
    """Move scores by what the rules' matches (those `where` selects) should count minus
    what they do, write the activities, and record the new counts."""
    whens = []
    for rule in rules:
        live = [ScoreMatch.rule_id == rule.rule_id, ScoreMatch.holds == true()]
        if rule.expires_after_days is not None:
            live.append(ScoreMatch.matched_at > now - timedelta(days=rule.expires_after_days))
        whens.append((and_(*live), rule.points))
    should = case(*whens, else_=0)
    pending = [
        ScoreMatch.rule_id.in_([r.rule_id for r in rules]),
        ScoreMatch.points != should,
        *([] if where is None else [where]),
    ]
    difference = func.sum(should - ScoreMatch.points)
    moves = (
        select(ScoreMatch.deal_id, difference.label("by"))
        .where(*pending)
        .group_by(ScoreMatch.deal_id)
        .having(difference != 0)
        .subquery()
    )
    record_select(
        session,
        DEAL_ACTIVITY_COLUMNS,
        select(
            Deal.contact_id,
            literal(DealActivity.SCORE_CHANGED.value),
            literal(cause),
            literal(now, Activity.occurred_at.type),
            json_object(literal("old"), Deal.score, literal("new"), Deal.score + moves.c.by),
            Deal.id,
        ).join(moves, moves.c.deal_id == Deal.id),
    )
    session.execute(
        update(Deal)
        .where(Deal.id == moves.c.deal_id)
        .values(score=Deal.score + moves.c.by)
        .execution_options(**NO_SYNC)
    )
    session.execute(
        update(ScoreMatch).where(*pending).values(points=should).execution_options(**NO_SYNC)
    )
    ended = [
        ScoreMatch.rule_id.in_([r.rule_id for r in rules]),
        ScoreMatch.holds == false(),
        *([] if where is None else [where]),
    ]
    session.execute(delete(ScoreMatch).where(*ended).execution_options(**NO_SYNC))
