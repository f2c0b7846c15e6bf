"""Pipelines and their ordered stages (deleting a stage that holds deals: deals.moves)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from tidings.deals import reach, totals
from tidings.deals.currencies import check_currency
from tidings.deals.models import Deal, Pipeline, Stage
from tidings.deals.repository import get_row
from tidings.errors import Conflict, NotFound, field_error

COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
PALETTE = ("#4c6ef5", "#15aabf", "#40c057", "#fab005", "#fd7e14", "#e64980", "#7950f2")
MAX_STAGES = 100


@dataclass(slots=True)
class StageSpec:
    title: str
    colour: str | None = None
    probability: int = 0


def _title(raw: str, field: str) -> str:
    title = raw.strip()
    if not title:
        raise field_error(field, "must not be blank")
    if len(title) > 200:
        raise field_error(field, "at most 200 characters")
    return title


def _colour(raw: str | None, position: int, field: str) -> str:
    if raw is None:
        return PALETTE[position % len(PALETTE)]
    if not COLOUR.fullmatch(raw):
        raise field_error(field, f"{raw!r} is not a colour like #4c6ef5")
    return raw.lower()


def _probability(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise field_error(field, "must be a whole percentage from 0 to 100")
    return value


def _unique_pipeline_name(session: Session, raw: str, exclude_id: int | None = None) -> str:
    name = _title(raw, "name")
    existing = session.scalar(select(Pipeline.id).where(Pipeline.name == name))
    if existing is not None and existing != exclude_id:
        raise Conflict(f"a pipeline named {name!r} already exists")
    return name


def create_pipeline(
    session: Session, name: str, currency: str, stages: Sequence[StageSpec], *, now: datetime
) -> Pipeline:
    if not stages:
        raise field_error("stages", "a pipeline needs at least one stage")
    if len(stages) > MAX_STAGES:
        raise field_error("stages", f"at most {MAX_STAGES} stages")
    titles = [_title(s.title, f"stages[{i}].title") for i, s in enumerate(stages)]
    if len(set(titles)) != len(titles):
        raise field_error("stages", "stage titles must be unique within a pipeline")
    pipeline = Pipeline(
        name=_unique_pipeline_name(session, name),
        currency=check_currency(currency),
        created_at=now,
        updated_at=now,
    )
    session.add(pipeline)
    session.flush()
    for position, (spec, title) in enumerate(zip(stages, titles, strict=True)):
        session.add(
            Stage(
                pipeline_id=pipeline.id,
                title=title,
                colour=_colour(spec.colour, position, f"stages[{position}].colour"),
                probability=_probability(spec.probability, f"stages[{position}].probability"),
                position=position,
                created_at=now,
                updated_at=now,
            )
        )
    session.flush()
    return pipeline


def get_pipeline(session: Session, pipeline_id: int) -> Pipeline:
    return get_row(session, Pipeline, pipeline_id, "pipeline")


def find_pipeline(session: Session, name_or_id: str) -> Pipeline:
    """A pipeline named by id or by name (the command line's way)."""
    text = name_or_id.strip()
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return get_pipeline(session, int(text))
    pipeline = session.scalar(select(Pipeline).where(Pipeline.name == text))
    if pipeline is None:
        raise NotFound(f"no pipeline named {text!r}")
    return pipeline


def list_pipelines(session: Session) -> Sequence[Pipeline]:
    return session.scalars(select(Pipeline).order_by(Pipeline.id)).all()


def stages_of(session: Session, pipeline_id: int) -> list[Stage]:
    """The pipeline's stages in their order."""
    query = select(Stage).where(Stage.pipeline_id == pipeline_id)
    return list(session.scalars(query.order_by(Stage.position, Stage.id)))


def stages_by_pipeline(session: Session) -> dict[int, list[Stage]]:
    """Every pipeline's stages in order (pipelines and stages are few)."""
    grouped: dict[int, list[Stage]] = {}
    for stage in session.scalars(select(Stage).order_by(Stage.position, Stage.id)):
        grouped.setdefault(stage.pipeline_id, []).append(stage)
    return grouped


def get_stage(session: Session, pipeline_id: int, stage_id: int) -> Stage:
    stage = session.get(Stage, stage_id)
    if stage is None or stage.pipeline_id != pipeline_id:
        raise NotFound(f"pipeline {pipeline_id} has no stage {stage_id}")
    return stage


def stage_named(session: Session, stage_id: int, field: str) -> Stage:
    """The stage with this id, or a 422 naming `field` (a stage given in a request body)."""
    stage = session.get(Stage, stage_id)
    if stage is None:
        raise field_error(field, f"stage {stage_id} does not exist")
    return stage


def update_pipeline(
    session: Session,
    pipeline: Pipeline,
    *,
    now: datetime,
    name: str | None = None,
    currency: str | None = None,
) -> Pipeline:
    """Rename, or change the currency new deals get (existing deals keep theirs)."""
    if name is not None:
        pipeline.name = _unique_pipeline_name(session, name, exclude_id=pipeline.id)
    if currency is not None:
        pipeline.currency = check_currency(currency)
    pipeline.updated_at = now
    session.flush()
    return pipeline


def delete_pipeline(session: Session, pipeline: Pipeline) -> None:
    """Refused while deals are in it (delete or move them first); its stages go with it."""
    deals = session.scalar(
        select(func.count()).select_from(Deal).where(Deal.pipeline_id == pipeline.id)
    )
    if deals:
        raise Conflict(f"pipeline {pipeline.id} holds {deals} deal(s): move or delete them first")
    session.execute(delete(Stage).where(Stage.pipeline_id == pipeline.id))
    totals.forget_pipeline(session, pipeline.id)
    reach.forget_pipeline(session, pipeline.id)
    session.delete(pipeline)
    session.flush()


def _unique_title(session: Session, pipeline_id: int, raw: str, exclude_id: int | None) -> str:
    title = _title(raw, "title")
    existing = session.scalar(
        select(Stage.id).where(Stage.pipeline_id == pipeline_id, Stage.title == title)
    )
    if existing is not None and existing != exclude_id:
        raise Conflict(f"pipeline {pipeline_id} already has a stage titled {title!r}")
    return title


def add_stage(
    session: Session,
    pipeline: Pipeline,
    spec: StageSpec,
    *,
    position: int | None = None,
    now: datetime,
) -> Stage:
    """Add a stage at `position` (0 = first; default: last); later stages move down."""
    stages = stages_of(session, pipeline.id)
    if len(stages) >= MAX_STAGES:
        raise field_error("stages", f"a pipeline has at most {MAX_STAGES} stages")
    where = len(stages) if position is None else position
    if not 0 <= where <= len(stages):
        raise field_error("position", f"must be from 0 to {len(stages)}")
    stage = Stage(
        pipeline_id=pipeline.id,
        title=_unique_title(session, pipeline.id, spec.title, None),
        colour=_colour(spec.colour, where, "colour"),
        probability=_probability(spec.probability, "probability"),
        position=where,
        created_at=now,
        updated_at=now,
    )
    stages.insert(where, stage)
    session.add(stage)
    _renumber(stages, now)
    session.flush()
    return stage


def update_stage(
    session: Session,
    stage: Stage,
    *,
    now: datetime,
    title: str | None = None,
    colour: str | None = None,
    probability: int | None = None,
) -> Stage:
    if title is not None:
        stage.title = _unique_title(session, stage.pipeline_id, title, stage.id)
    if colour is not None:
        stage.colour = _colour(colour, stage.position, "colour")
    if probability is not None:
        stage.probability = _probability(probability, "probability")
    stage.updated_at = now
    session.flush()
    return stage


def reorder_stages(
    session: Session, pipeline: Pipeline, stage_ids: Sequence[int], *, now: datetime
) -> list[Stage]:
    """Put the pipeline's stages in the order of `stage_ids`, which must name each once."""
    stages = {s.id: s for s in stages_of(session, pipeline.id)}
    if sorted(stage_ids) != sorted(stages):
        raise field_error(
            "stage_ids",
            f"must list each stage of pipeline {pipeline.id} exactly once: {sorted(stages)}",
        )
    ordered = [stages[i] for i in stage_ids]
    _renumber(ordered, now)
    session.flush()
    reach.rebuild(session, pipeline.id)
    return ordered


def _renumber(stages: list[Stage], now: datetime) -> None:
    for position, stage in enumerate(stages):
        if stage.position != position:
            stage.position = position
            stage.updated_at = now


def stage_has_deals(session: Session, stage_id: int) -> bool:
    return bool(session.scalar(select(exists().where(Deal.stage_id == stage_id))))


def remove_stage(session: Session, stage: Stage, *, now: datetime) -> None:
    """Delete an empty stage (deals.moves.delete_stage moves deals out first)."""
    stages = stages_of(session, stage.pipeline_id)
    if len(stages) == 1:
        raise Conflict(f"stage {stage.id} is the pipeline's only stage: a pipeline needs one")
    if stage_has_deals(session, stage.id):
        raise Conflict(f"stage {stage.id} still holds deals")
    session.delete(stage)
    totals.forget_stage(session, stage.id)
    _renumber([s for s in stages if s.id != stage.id], now)
    session.flush()
    reach.rebuild(session, stage.pipeline_id)
