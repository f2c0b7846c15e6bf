"""Reports over deals: the board, won/lost, the conversion funnel, the time in each stage and
the forecast. Each is a few grouped queries whose answers are as small as the pipeline's
stages (or months); no query returns a row per deal except a stage's first cards."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from tidings.db.sqlfunc import epoch_seconds
from tidings.deals.models import Deal, Pipeline, Stage, StageVisit
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


def _card(deal: Deal) -> dict[str, Any]:
    return {
        "id": deal.id,
        "title": deal.title,
        "value": deal.value,
        "currency": deal.currency,
        "status": deal.status,
        "contact_id": deal.contact_id,
        "owner_id": deal.owner_id,
        "score": deal.score,
        "expected_close": deal.expected_close,
        "position": deal.position,
        "updated_at": deal.updated_at,
    }


def board(
    session: Session, pipeline_id: int, *, status: str = "open", cards: int = 50
) -> dict[str, Any]:
    """Per stage, in the stage order: the count and value sums of its deals with `status`,
    and its first `cards` deals in card order (position, then id)."""
    pipeline = get_pipeline(session, pipeline_id)
    stages = stages_of(session, pipeline_id)
    money: dict[int, Money] = defaultdict(Money)
    totals = session.execute(
        select(Deal.stage_id, Deal.currency, func.count(), func.sum(Deal.value))
        .where(Deal.pipeline_id == pipeline_id, Deal.status == status)
        .group_by(Deal.stage_id, Deal.currency)
    )
    for stage_id, currency, count, total in totals:
        money[stage_id].add(currency, count, int(total or 0))
    columns = []
    for stage in stages:
        first = session.scalars(
            select(Deal)
            .where(
                Deal.pipeline_id == pipeline_id, Deal.status == status, Deal.stage_id == stage.id
            )
            .order_by(Deal.position, Deal.id)
            .limit(cards)
        ).all()
        columns.append(
            {
                "stage": _stage_out(stage),
                **money[stage.id].out(),
                "cards": [_card(d) for d in first],
            }
        )
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
    deal_created / deal_stage_changed activity is written with."""
    pipeline = get_pipeline(session, pipeline_id)
    stages = stages_of(session, pipeline_id)
    order = {s.id: s.position for s in stages}
    furthest_position = func.max(Stage.position)
    per_deal = (
        select(StageVisit.deal_id, furthest_position.label("furthest"))
        .join(Stage, Stage.id == StageVisit.stage_id)
        .where(StageVisit.pipeline_id == pipeline_id)
        .group_by(StageVisit.deal_id)
    )
    entered = func.min(StageVisit.entered_at)
    if since is not None:
        per_deal = per_deal.having(entered >= since)
    if until is not None:
        per_deal = per_deal.having(entered < until)
    inner = per_deal.subquery()
    counts = pairs(session, select(inner.c.furthest, func.count()).group_by(inner.c.furthest))
    reached = 0
    steps: list[dict[str, Any]] = []
    for stage in reversed(stages):
        reached += int(counts.get(order[stage.id], 0))
        steps.append({"stage": _stage_out(stage), "reached": reached})
    steps.reverse()
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
    their value, and their value weighted by their stage's win probability."""
    where = [Deal.status == "open", Deal.expected_close.is_not(None)]
    if pipeline_id is not None:
        get_pipeline(session, pipeline_id)
        where.append(Deal.pipeline_id == pipeline_id)
    if since is not None:
        where.append(Deal.expected_close >= since)
    if until is not None:
        where.append(Deal.expected_close < until)
    probability = pairs(session, select(Stage.id, Stage.probability))
    rows = session.execute(
        select(
            Deal.expected_close, Deal.stage_id, Deal.currency, func.count(), func.sum(Deal.value)
        )
        .where(and_(*where))
        .group_by(Deal.expected_close, Deal.stage_id, Deal.currency)
    )
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
