"""REST: /reports/deals/... (the board, won/lost, funnel, time in stage, forecast)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from tidings.api.deps import ClockDep, SessionDep
from tidings.api.schemas import Id
from tidings.deals import reports
from tidings.deals.api.common import IdQuery
from tidings.deals.validation import DealStatus

router = APIRouter(prefix="/reports/deals", tags=["deal reports"])


@router.get("/board")
def board(
    session: SessionDep,
    pipeline: Id,
    status: DealStatus = DealStatus.OPEN,
    cards: Annotated[int, Query(ge=0, le=500)] = 50,
) -> dict[str, Any]:
    """Per stage in order: count and value sums of its deals, and its first cards (card
    order: position, then id). The rest of a stage: GET /deals?stage=ID."""
    return reports.board(session, pipeline, status=status.value, cards=cards)


@router.get("/won-lost")
def won_lost(
    session: SessionDep,
    clock: ClockDep,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    pipeline: IdQuery = None,
) -> dict[str, Any]:
    """Deals won and lost in [since, until) (default: the last 30 days), by the stage they
    closed in and by owner."""
    end = until or clock.now()
    start = since or end - timedelta(days=30)
    return reports.won_lost(session, since=start, until=end, pipeline_id=pipeline)


@router.get("/funnel")
def funnel(
    session: SessionDep,
    pipeline: Id,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> dict[str, Any]:
    """Per stage: how many of the deals that entered the pipeline in [since, until) reached
    it or a later stage, and the share of those that went on."""
    return reports.funnel(session, pipeline, since=since, until=until)


@router.get("/time-in-stage")
def time_in_stage(
    session: SessionDep,
    pipeline: Id,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> dict[str, Any]:
    """Per stage: the average and longest stay of the stays that ended in [since, until)."""
    return reports.time_in_stage(session, pipeline, since=since, until=until)


@router.get("/forecast")
def forecast(
    session: SessionDep,
    pipeline: IdQuery = None,
    since: date | None = None,
    until: date | None = None,
) -> dict[str, Any]:
    """Open deals by expected-close month: value, and value weighted by stage probability."""
    return reports.forecast(session, pipeline_id=pipeline, since=since, until=until)
