"""Reports over deals: the board, won/lost, the conversion funnel, the time in each stage and
the forecast. Each is a few grouped queries whose answers are as small as the pipeline's
stages (or months); no query returns a row per deal except a stage's first cards."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, union_all
from sqlalchemy.orm import Session

from tidings.db.sqlfunc import epoch_seconds
from tidings.deals import totals
from tidings.deals.models import Deal, Pipeline, Stage, StageReach, StageVisit
from tidings.deals.pipelines import get_pipeline, stages_of
from tidings.deals.repository import pairs


@dataclass(slots=True)
class Money:
    """Sums per currency: a pipeline's deals may be valued in several."""

    count: int = 0
    totals: dict[str, int] = field(default_factory=dict)

    def add(self, currency: str, count: int, total: int) -> None:
        self.count += count
        self.totals[currency] = self.totals.get(currency, 0) + total

    def out(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "totals": [{"currency": c, "value": v} for c, v in sorted(self.totals.items())],
        }


def _stage_out(stage: Stage) -> dict[str, Any]:
    return {
        "id": stage.id,
        "title": stage.title,
        "colour": stage.colour,
        "probability": stage.probability,
        "position": stage.position,
    }


CARD_COLUMNS = (
    Deal.id,
    Deal.stage_id,
    Deal.title,
    Deal.value,
    Deal.currency,
    Deal.status,
    Deal.contact_id,
    Deal.owner_id,
    Deal.score,
    Deal.expected_close,
    Deal.position,
    Deal.updated_at,
)
CARD_KEYS = tuple(c.key for c in CARD_COLUMNS)


def board(
    session: Session, pipeline_id: int, *, status: str = "open", cards: int = 50
) -> dict[str, Any]:
    """Per stage, in the stage order: the count and value sums of its deals with `status`
    (from the stage totals every deal write keeps), and its first `cards` deals in card order
    (position, then id: a range of ix_deals_board each, in one UNION ALL)."""
    pipeline = get_pipeline(session, pipeline_id)
    stages = stages_of(session, pipeline_id)
    money: dict[int, Money] = defaultdict(Money)
    for total in totals.of_pipeline(session, pipeline_id, status):
        money[total.stage_id].add(total.currency, total.deals, total.value)
    by_stage: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if stages and cards:
        firsts = [
            select(*CARD_COLUMNS)
            .where(Deal.pipeline_id == pipeline_id, Deal.status == status, Deal.stage_id == s.id)
            .order_by(Deal.position, Deal.id)
            .limit(cards)
            .subquery()
            for s in stages
        ]
        query = union_all(*(select(first) for first in firsts))
        for row in session.execute(query):
            card = dict(zip(CARD_KEYS, row, strict=True))
            by_stage[card.pop("stage_id")].append(card)
    columns = [
        {"stage": _stage_out(stage), **money[stage.id].out(), "cards": by_stage[stage.id]}
        for stage in stages
    ]
    return {"pipeline": _pipeline_out(pipeline), "status": status, "stages": columns}


def _pipeline_out(pipeline: Pipeline) -> dict[str, Any]:
    return {"id": pipeline.id, "name": pipeline.name, "currency": pipeline.currency}


def _closed_between(since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [Deal.status.in_(["won", "lost"]), Deal.closed_at >= since, Deal.closed_at < until]


def won_lost(
    session: Session, *, since: datetime, until: datetime, pipeline_id: int | None = None
) -> dict[str, Any]:
    """Deals won and lost in [since, until), by the stage they closed in and by owner."""
    where = _closed_between(since, until)
    if pipeline_id is not None:
        where.append(Deal.pipeline_id == pipeline_id)

    def grouped(column: Any) -> list[dict[str, Any]]:
        rows = session.execute(
            select(column, Deal.status, Deal.currency, func.count(), func.sum(Deal.value))
            .where(*where)
            .group_by(column, Deal.status, Deal.currency)
        )
        out: dict[Any, dict[str, Money]] = defaultdict(lambda: {"won": Money(), "lost": Money()})
        for key, status, currency, count, total in rows:
            out[key][status].add(currency, count, int(total or 0))
        return [
            {"id": key, "won": parts["won"].out(), "lost": parts["lost"].out()}
            for key, parts in sorted(out.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
        ]

    return {
        "since": since,
        "until": until,
        "pipeline_id": pipeline_id,
        "by_stage": grouped(Deal.stage_id),
        "by_owner": grouped(Deal.owner_id),
    }


def funnel(
    session: Session,
    pipeline_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """The conversion funnel of the deals that entered the pipeline in [since, until): per
    stage (in the current stage order), how many reached it or a later stage, and the share
    of those that went on to a later stage. Read from the stage visits that every
    deal_created / deal_stage_changed activity is written with, by way of the furthest stage
    each deal reached (deals.reach): a count per stage off ix_deal_stage_reach_funnel."""
    pipeline = get_pipeline(session, pipeline_id)
    stages = stages_of(session, pipeline_id)
    steps: list[dict[str, Any]] = [{"stage": _stage_out(s), "reached": 0} for s in stages]
    where = [StageReach.pipeline_id == pipeline_id]
    if since is not None:
        where.append(StageReach.entered_at >= since)
    if until is not None:
        where.append(StageReach.entered_at < until)
    furthest = dict(
        session.execute(
            select(StageReach.furthest_stage_id, func.count())
            .where(*where)
            .group_by(StageReach.furthest_stage_id)
        ).all()
    )
    # A deal that got to stage i reached every stage before it: sum from the last stage back.
    reached = 0
    for step, stage in reversed(list(zip(steps, stages, strict=True))):
        reached += int(furthest.get(stage.id, 0))
        step["reached"] = reached
    for here, after in zip(steps, [*steps[1:], None], strict=True):
        if after is None:
            here["conversion"] = None
        else:
            here["conversion"] = after["reached"] / here["reached"] if here["reached"] else None
    return {"pipeline": _pipeline_out(pipeline), "since": since, "until": until, "stages": steps}


def time_in_stage(
    session: Session,
    pipeline_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Per stage, the average (and longest) time deals spent in it, over the stays that
    ended in [since, until); deals still in a stage are counted apart (`current`)."""
    pipeline = get_pipeline(session, pipeline_id)
    stages = stages_of(session, pipeline_id)
    seconds = epoch_seconds(StageVisit.left_at) - epoch_seconds(StageVisit.entered_at)
    ended = [StageVisit.pipeline_id == pipeline_id, StageVisit.left_at.is_not(None)]
    if since is not None:
        ended.append(StageVisit.left_at >= since)
    if until is not None:
        ended.append(StageVisit.left_at < until)
    stats = {
        stage_id: (count, average, longest)
        for stage_id, count, average, longest in session.execute(
            select(StageVisit.stage_id, func.count(), func.avg(seconds), func.max(seconds))
            .where(*ended)
            .group_by(StageVisit.stage_id)
        )
    }
    current = pairs(
        session,
        select(StageVisit.stage_id, func.count())
        .where(StageVisit.pipeline_id == pipeline_id, StageVisit.left_at.is_(None))
        .group_by(StageVisit.stage_id),
    )
    out = []
    for stage in stages:
        count, average, longest = stats.get(stage.id, (0, None, None))
        out.append(
            {
                "stage": _stage_out(stage),
                "stays": count,
                "average_seconds": None if average is None else round(float(average), 1),
                "longest_seconds": None if longest is None else round(float(longest), 1),
                "current": int(current.get(stage.id, 0)),
            }
        )
    return {"pipeline": _pipeline_out(pipeline), "since": since, "until": until, "stages": out}


def forecast(
    session: Session,
    *,
    pipeline_id: int | None = None,
    since: date | None = None,
    until: date | None = None,
) -> dict[str, Any]:
    """Open deals by the month of their expected close date (in [since, until) when given):
    their value, and their value weighted by their stage's win probability.

    Whole months (since and until on the 1st, or not given) are read from the stage totals,
    which keep the sums per expected close month: a few rows per stage and month, however
    many deals. Other bounds read the deals themselves."""
    if pipeline_id is not None:
        get_pipeline(session, pipeline_id)
    probability = pairs(session, select(Stage.id, Stage.probability))
    if all(d is None or d.day == 1 for d in (since, until)):
        rows: Iterable[tuple[Any, int, str, int, int | None]] = totals.by_close_month(
            session,
            pipeline_id,
            None if since is None else since.isoformat()[:7],
            None if until is None else until.isoformat()[:7],
        )
    else:
        rows = _forecast_rows(session, pipeline_id, since, until)
    months: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for closing, stage_id, currency, count, total in rows:
        month = str(closing)[:7]  # YYYY-MM (never None: filtered out above)
        bucket = months[(month, currency)]
        bucket[0] += count
        bucket[1] += int(total or 0)
        bucket[2] += int(total or 0) * probability.get(stage_id, 0) / 100
    return {
        "pipeline_id": pipeline_id,
        "months": [
            {
                "month": month,
                "currency": currency,
                "count": int(count),
                "value": int(value),
                "weighted_value": round(weighted),
            }
            for (month, currency), (count, value, weighted) in sorted(months.items())
        ],
    }


def _forecast_rows(
    session: Session, pipeline_id: int | None, since: date | None, until: date | None
) -> list[tuple[Any, int, str, int, int | None]]:
    """The open deals' (expected close date, stage, currency, count, value) groups, from the
    deals (bounds that are not whole months)."""
    where = [Deal.status == "open", Deal.expected_close.is_not(None)]
    if pipeline_id is not None:
        where.append(Deal.pipeline_id == pipeline_id)
    if since is not None:
        where.append(Deal.expected_close >= since)
    if until is not None:
        where.append(Deal.expected_close < until)
    rows = session.execute(
        select(
            Deal.expected_close, Deal.stage_id, Deal.currency, func.count(), func.sum(Deal.value)
        )
        .where(and_(*where))
        .group_by(Deal.expected_close, Deal.stage_id, Deal.currency)
    )
    return [(c, s, cur, int(n), v) for c, s, cur, n, v in rows]
