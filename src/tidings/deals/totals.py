"""Per-stage totals (deal_stage_totals): how many deals, worth how much, per stage, status,
currency and expected close month. Every deal write moves them in its own transaction, by
increments, so the board and the forecast read a few rows however many deals a pipeline holds.

The price: on PostgreSQL two transactions that change deals of the same stage, status and
currency take turns on its row (each holds it until it commits). `rebuild` recounts the table
from the deals (a repair; nothing needs it in normal operation).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, insert, literal, select
from sqlalchemy.orm import Session

from tidings.db.bulk import dialect_insert
from tidings.db.sqlfunc import year_month
from tidings.deals.models import Deal, StageTotal

KEY = ("pipeline_id", "stage_id", "status", "currency", "close_month")
# (pipeline_id, stage_id, status, currency, close month, deals, value): a change to the totals
Change = tuple[int, int, str, str, str, int, int]


def close_month(expected_close: date | None) -> str:
    """The close_month key of a deal (as year_month computes it in SQL)."""
    return "" if expected_close is None else expected_close.isoformat()[:7]


def _upsert(session: Session, source: Select[*tuple[Any, ...]] | list[dict[str, Any]]) -> None:
    insert = dialect_insert(session, StageTotal)
    statement = (
        insert.from_select([*KEY, "deals", "value"], source)
        if isinstance(source, Select)
        else insert.values(source)
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=list(KEY),
            set_={
                "deals": StageTotal.deals + statement.excluded.deals,
                "value": StageTotal.value + statement.excluded.value,
            },
        )
    )


def add(session: Session, changes: Iterable[Change]) -> None:
    """Apply changes (summed per stage, status and currency first; zero sums dropped)."""
    summed: dict[tuple[int, int, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for pipeline_id, stage_id, status, currency, month, deals, value in changes:
        bucket = summed[(pipeline_id, stage_id, status, currency, month)]
        bucket[0] += deals
        bucket[1] += value
    rows = [
        {**dict(zip(KEY, key, strict=True)), "deals": deals, "value": value}
        for key, (deals, value) in sorted(summed.items())
        if deals or value
    ]
    if rows:
        _upsert(session, rows)


def move(
    session: Session, moving: list[ColumnElement[bool]], pipeline_id: int, stage_id: int
) -> None:
    """Set-based, before the deals `moving` selects move to the stage: take them off where
    they are and add them there (two INSERT ... SELECT ... GROUP BY)."""
    month = year_month(Deal.expected_close)
    groups = (Deal.pipeline_id, Deal.stage_id, Deal.status, Deal.currency, month)
    _upsert(
        session,
        select(*groups, -func.count(), -func.sum(Deal.value)).where(*moving).group_by(*groups),
    )
    _upsert(
        session,
        select(
            literal(pipeline_id),
            literal(stage_id),
            Deal.status,
            Deal.currency,
            month,
            func.count(),
            func.sum(Deal.value),
        )
        .where(*moving)
        .group_by(Deal.status, Deal.currency, month),
    )


def of_pipeline(session: Session, pipeline_id: int, status: str) -> list[StageTotal]:
    query = select(StageTotal).where(
        StageTotal.pipeline_id == pipeline_id, StageTotal.status == status, StageTotal.deals != 0
    )
    return list(session.scalars(query))


def forget_stage(session: Session, stage_id: int) -> None:
    """A deleted stage's rows (it held no deals by then)."""
    session.execute(delete(StageTotal).where(StageTotal.stage_id == stage_id))


def forget_pipeline(session: Session, pipeline_id: int) -> None:
    session.execute(delete(StageTotal).where(StageTotal.pipeline_id == pipeline_id))


def rebuild(session: Session) -> None:
    """Recount every stage's totals from the deals."""
    session.execute(delete(StageTotal))
    month = year_month(Deal.expected_close)
    groups = (Deal.pipeline_id, Deal.stage_id, Deal.status, Deal.currency, month)
    session.execute(
        insert(StageTotal).from_select(
            [*KEY, "deals", "value"],
            select(*groups, func.count(), func.sum(Deal.value)).group_by(*groups),
        )
    )


def by_close_month(
    session: Session, pipeline_id: int | None, since: str | None, until: str | None
) -> list[tuple[str, int, str, int, int]]:
    """The open deals with an expected close date, per (month, stage, currency): count and
    value, for months in [since, until) ('YYYY-MM', None: unbounded)."""
    where = [StageTotal.status == "open", StageTotal.close_month != "", StageTotal.deals != 0]
    if pipeline_id is not None:
        where.append(StageTotal.pipeline_id == pipeline_id)
    if since is not None:
        where.append(StageTotal.close_month >= since)
    if until is not None:
        where.append(StageTotal.close_month < until)
    rows = session.execute(
        select(
            StageTotal.close_month,
            StageTotal.stage_id,
            StageTotal.currency,
            StageTotal.deals,
            StageTotal.value,
        ).where(*where)
    )
    return [(m, s, c, int(n), int(v)) for m, s, c, n, v in rows]
