"""The furthest stage each deal has reached in each pipeline (deal_stage_reach), which the
conversion funnel counts. Written beside the stage visits in the same transaction: a deal
entering a stage adds its row for that pipeline, or moves its furthest stage on when the new
stage comes later in the current order. A change of stage order (reorder, removal) rebuilds
the pipeline's rows from its visits, since "furthest" depends on that order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, and_, delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from tidings.db.bulk import in_values
from tidings.deals.models import Deal, Stage, StageReach, StageVisit

NO_SYNC = {"synchronize_session": False}


def enter(session: Session, deal_ids: Select[int], stage: Stage, now: datetime) -> None:
    """The deals `deal_ids` (a SELECT of one column, `id`) enter `stage` at `now`."""
    mine = [StageReach.pipeline_id == stage.pipeline_id, StageReach.deal_id.in_(deal_ids)]
    # The stages at or after `stage` in the order the funnel ranks them (position, then id).
    not_behind = select(Stage.id).where(
        Stage.pipeline_id == stage.pipeline_id,
        or_(
            Stage.position > stage.position,
            and_(Stage.position == stage.position, Stage.id >= stage.id),
        ),
    )
    session.execute(
        update(StageReach)
        .where(*mine, StageReach.furthest_stage_id.not_in(not_behind))
        .values(furthest_stage_id=stage.id)
        .execution_options(**NO_SYNC)
    )
    ids = deal_ids.subquery()
    known = exists().where(
        StageReach.pipeline_id == stage.pipeline_id, StageReach.deal_id == ids.c.id
    )
    session.execute(
        insert(StageReach).from_select(
            ["pipeline_id", "deal_id", "entered_at", "furthest_stage_id"],
            select(
                literal(stage.pipeline_id),
                ids.c.id,
                literal(now, StageReach.entered_at.type),
                literal(stage.id),
            ).where(~known),
        )
    )


def enter_each(session: Session, moved: Sequence[tuple[int, int, int]], now: datetime) -> None:
    """`enter` for (deal id, pipeline id, stage id) triples, grouped per stage."""
    by_stage: dict[int, list[int]] = defaultdict(list)
    for deal_id, _pipeline_id, stage_id in moved:
        by_stage[stage_id].append(deal_id)
    for stage_id, deal_ids in sorted(by_stage.items()):
        stage = session.get(Stage, stage_id)
        if stage is not None:
            enter(session, select(Deal.id).where(in_values(session, Deal.id, deal_ids)), stage, now)


def forget_deal(session: Session, deal_id: int) -> None:
    session.execute(delete(StageReach).where(StageReach.deal_id == deal_id))


def forget_pipeline(session: Session, pipeline_id: int) -> None:
    session.execute(delete(StageReach).where(StageReach.pipeline_id == pipeline_id))


def rebuild(session: Session, pipeline_id: int) -> None:
    """Recount the pipeline's rows from its stage visits in the current stage order (visits
    of deleted stages rank below every stage, as the funnel ranks them)."""
    forget_pipeline(session, pipeline_id)
    gone = func.coalesce(Stage.position, -1)
    partition = (StageVisit.deal_id,)
    ranked = (
        select(
            StageVisit.deal_id,
            func.min(StageVisit.entered_at).over(partition_by=partition).label("entered_at"),
            StageVisit.stage_id,
            func.row_number()
            .over(
                partition_by=partition,
                order_by=(gone.desc(), StageVisit.stage_id.desc()),
            )
            .label("rank"),
        )
        .outerjoin(Stage, and_(Stage.id == StageVisit.stage_id, Stage.pipeline_id == pipeline_id))
        .where(StageVisit.pipeline_id == pipeline_id)
        .subquery()
    )
    session.execute(
        insert(StageReach).from_select(
            ["pipeline_id", "deal_id", "entered_at", "furthest_stage_id"],
            select(
                literal(pipeline_id), ranked.c.deal_id, ranked.c.entered_at, ranked.c.stage_id
            ).where(ranked.c.rank == 1),
        )
    )
