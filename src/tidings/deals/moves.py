"""Moving many deals to a stage at once, set-based: one INSERT ... SELECT writes their
deal_stage_changed activities, one their new stage visits, one UPDATE moves them. Deleting a
stage that holds deals moves them out the same way first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, literal, select, update
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.activities.service import DEAL_ACTIVITY_COLUMNS, record_select
from tidings.db.bulk import in_values
from tidings.db.engine import use_bulk_page_cache
from tidings.db.sqlfunc import json_object
from tidings.deals import reach, scoring, totals
from tidings.deals.models import Deal, Stage, StageVisit
from tidings.deals.pipelines import remove_stage, stage_has_deals
from tidings.deals.service import entry_position
from tidings.deals.timeline import DealActivity
from tidings.errors import Conflict, field_error

MAX_BULK = 10_000
NO_SYNC = {"synchronize_session": False}
# What a move changes, as scoring conditions name deal fields: only rules that compare one of
# these are re-evaluated for the moved deals.
MOVE_CHANGES = frozenset({"stage", "pipeline", "updated_at"})


def move_deals(
    session: Session,
    which: ColumnElement[bool],
    stage: Stage,
    *,
    now: datetime,
    cause: str,
    afterwards: ColumnElement[bool] | None = None,
) -> int:
    """Move the deals `which` selects (a condition on Deal) to `stage`, which may be in
    another pipeline; deals already there are left alone. Returns how many moved.

    Their scores are refreshed after the move, for the deals `afterwards` selects then
    (default: `which`; it must still select the movers)."""
    moving = [which, Deal.stage_id != stage.id]
    use_bulk_page_cache(session)  # the activity, visit and board indexes, all over the place
    time = literal(now, Activity.occurred_at.type)
    record_select(
        session,
        DEAL_ACTIVITY_COLUMNS,
        select(
            Deal.contact_id,
            literal(DealActivity.STAGE_CHANGED.value),
            literal(cause),
            time,
            json_object(
                literal("pipeline_id"),
                literal(stage.pipeline_id),
                literal("from_pipeline_id"),
                Deal.pipeline_id,
                literal("from_stage_id"),
                Deal.stage_id,
                literal("to_stage_id"),
                literal(stage.id),
            ),
            Deal.id,
        ).where(*moving),
    )
    ids = select(Deal.id).where(*moving)
    totals.move(session, moving, stage.pipeline_id, stage.id)
    reach.enter(session, ids, stage, now)
    session.execute(
        update(StageVisit)
        .where(StageVisit.deal_id.in_(ids), StageVisit.left_at.is_(None))
        .values(left_at=now)
        .execution_options(**NO_SYNC)
    )
    session.execute(
        insert(StageVisit).from_select(
            ["deal_id", "pipeline_id", "stage_id", "entered_at"],
            select(Deal.id, literal(stage.pipeline_id), literal(stage.id), time).where(*moving),
        )
    )
    moved: Any = session.execute(
        update(Deal)
        .where(*moving)
        .values(
            stage_id=stage.id,
            pipeline_id=stage.pipeline_id,
            position=entry_position(now),
            updated_at=now,
        )
        .execution_options(**NO_SYNC)
    )
    count = int(moved.rowcount or 0)
    if count:
        rescore = select(Deal.id).where(which if afterwards is None else afterwards)
        scoring.refresh_scores(session, rescore, now, cause=cause, changed=MOVE_CHANGES)
    return count


def move_deal_ids(
    session: Session, deal_ids: list[int], stage: Stage, *, now: datetime, cause: str
) -> int:
    """move_deals for deals named by id; every id must exist."""
    if len(deal_ids) > MAX_BULK:
        raise field_error("deal_ids", f"at most {MAX_BULK} deals per call")
    unique = sorted(set(deal_ids))
    found = session.scalar(
        select(func.count()).select_from(Deal).where(in_values(session, Deal.id, unique))
    )
    if found != len(unique):
        present = set(session.scalars(select(Deal.id).where(in_values(session, Deal.id, unique))))
        missing = [i for i in unique if i not in present][:10]
        raise field_error("deal_ids", f"no such deal(s): {', '.join(map(str, missing))}")
    return move_deals(session, in_values(session, Deal.id, unique), stage, now=now, cause=cause)


def delete_stage(
    session: Session, stage: Stage, *, move_to: int | None, now: datetime, cause: str
) -> int:
    """Delete a stage; deals in it must be moved to `move_to`, another stage of the same
    pipeline (refused otherwise). Returns how many deals were moved."""
    moved = 0
    if move_to is not None:
        if move_to == stage.id:
            raise field_error("move_to", "must be another stage than the one deleted")
        target = session.get(Stage, move_to)
        if target is None or target.pipeline_id != stage.pipeline_id:
            raise field_error("move_to", f"pipeline {stage.pipeline_id} has no stage {move_to}")
        moved = move_deals(
            session,
            Deal.stage_id == stage.id,
            target,
            now=now,
            cause=cause,
            afterwards=Deal.stage_id == target.id,
        )
    elif stage_has_deals(session, stage.id):
        count = session.scalar(
            select(func.count()).select_from(Deal).where(Deal.stage_id == stage.id)
        )
        message = f"stage {stage.id} holds {count} deal(s): name another stage of the pipeline"
        raise Conflict(
            f"{message} to move them to (?move_to=STAGE_ID)",
            errors=[{"field": "move_to", "message": message}],
        )
    remove_stage(session, stage, now=now)
    return moved
