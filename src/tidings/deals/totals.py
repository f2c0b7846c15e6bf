"""Per-stage totals (deal_stage_totals): how many deals, worth how much, per stage, status and
currency. Every deal write moves them in its own transaction, by increments, so the board reads
a few rows however many deals a pipeline holds.

The price: on PostgreSQL two transactions that change deals of the same stage, status and
currency take turns on its row (each holds it until it commits). `rebuild` recounts the table
from the deals (a repair; nothing needs it in normal operation).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, insert, literal, select
from sqlalchemy.orm import Session

from tidings.db.bulk import dialect_insert
from tidings.deals.models import Deal, StageTotal

KEY = ("pipeline_id", "stage_id", "status", "currency")
# (pipeline_id, stage_id, status, currency, deals, value): a change to the totals
Change = tuple[int, int, str, str, int, int]


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
    summed: dict[tuple[int, int, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for pipeline_id, stage_id, status, currency, deals, value in changes:
        bucket = summed[(pipeline_id, stage_id, status, currency)]
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
    groups = (Deal.pipeline_id, Deal.stage_id, Deal.status, Deal.currency)
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
            func.count(),
            func.sum(Deal.value),
        )
        .where(*moving)
        .group_by(Deal.status, Deal.currency),
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
    groups = (Deal.pipeline_id, Deal.stage_id, Deal.status, Deal.currency)
    session.execute(
        insert(StageTotal).from_select(
            [*KEY, "deals", "value"],
            select(*groups, func.count(), func.sum(Deal.value)).group_by(*groups),
        )
    )
