"""REST: /pipelines with their stages, and /deal-fields."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import Field
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.api.deps import ClockDep, SessionDep
from tidings.api.schemas import Id, InputModel
from tidings.contacts.schemas import FieldIn, FieldOut, FieldPatch
from tidings.deals import fields, pipelines
from tidings.deals.api.common import IdQuery, Orm
from tidings.deals.models import Pipeline
from tidings.deals.moves import delete_stage
from tidings.deals.pipelines import StageSpec

router = APIRouter()


class StageIn(InputModel):
    title: str = Field(min_length=1, max_length=200)
    colour: str | None = Field(default=None, description="#rrggbb; default from a palette")
    probability: int = Field(default=0, ge=0, le=100, description="win probability, percent")


class NewStageIn(StageIn):
    position: int | None = Field(default=None, ge=0, description="0 = first; default last")


class StagePatch(InputModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    colour: str | None = None
    probability: int | None = Field(default=None, ge=0, le=100)


class StageOut(Orm):
    id: int
    pipeline_id: int
    title: str
    colour: str
    probability: int
    position: int


class PipelineIn(InputModel):
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(description="ISO 4217 code, e.g. EUR")
    stages: list[StageIn] = Field(min_length=1, max_length=pipelines.MAX_STAGES)


class PipelinePatch(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    currency: str | None = None


class PipelineOut(Orm):
    id: int
    name: str
    currency: str
    stages: list[StageOut]
    created_at: datetime
    updated_at: datetime


class StageOrderIn(InputModel):
    stage_ids: list[Id] = Field(min_length=1, max_length=pipelines.MAX_STAGES)


def _out(session: Session, pipeline: Pipeline) -> PipelineOut:
    stages = [StageOut.model_validate(s) for s in pipelines.stages_of(session, pipeline.id)]
    return PipelineOut(
        id=pipeline.id,
        name=pipeline.name,
        currency=pipeline.currency,
        stages=stages,
        created_at=pipeline.created_at,
        updated_at=pipeline.updated_at,
    )


def _spec(stage: StageIn) -> StageSpec:
    return StageSpec(stage.title, stage.colour, stage.probability)


@router.get("/pipelines", tags=["pipelines"])
def list_pipelines(session: SessionDep) -> list[PipelineOut]:
    return [_out(session, p) for p in pipelines.list_pipelines(session)]


@router.post("/pipelines", status_code=201, tags=["pipelines"])
def create_pipeline(body: PipelineIn, session: SessionDep, clock: ClockDep) -> PipelineOut:
    pipeline = pipelines.create_pipeline(
        session, body.name, body.currency, [_spec(s) for s in body.stages], now=clock.now()
    )
    return _out(session, pipeline)


@router.get("/pipelines/{pipeline_id}", tags=["pipelines"])
def get_pipeline(pipeline_id: Id, session: SessionDep) -> PipelineOut:
    return _out(session, pipelines.get_pipeline(session, pipeline_id))


@router.patch("/pipelines/{pipeline_id}", tags=["pipelines"])
def patch_pipeline(
    pipeline_id: Id, body: PipelinePatch, session: SessionDep, clock: ClockDep
) -> PipelineOut:
    pipeline = pipelines.update_pipeline(
        session,
        pipelines.get_pipeline(session, pipeline_id),
        now=clock.now(),
        name=body.name,
        currency=body.currency,
    )
    return _out(session, pipeline)


@router.delete("/pipelines/{pipeline_id}", status_code=204, tags=["pipelines"])
def delete_pipeline(pipeline_id: Id, session: SessionDep) -> Response:
    """Refused (409) while deals are in the pipeline."""
    pipelines.delete_pipeline(session, pipelines.get_pipeline(session, pipeline_id))
    return Response(status_code=204)


@router.post("/pipelines/{pipeline_id}/stages", status_code=201, tags=["pipelines"])
def add_stage(pipeline_id: Id, body: NewStageIn, session: SessionDep, clock: ClockDep) -> StageOut:
    pipeline = pipelines.get_pipeline(session, pipeline_id)
    stage = pipelines.add_stage(
        session, pipeline, _spec(body), position=body.position, now=clock.now()
    )
    return StageOut.model_validate(stage)


@router.patch("/pipelines/{pipeline_id}/stages/{stage_id}", tags=["pipelines"])
def patch_stage(
    pipeline_id: Id, stage_id: Id, body: StagePatch, session: SessionDep, clock: ClockDep
) -> StageOut:
    stage = pipelines.update_stage(
        session,
        pipelines.get_stage(session, pipeline_id, stage_id),
        now=clock.now(),
        title=body.title,
        colour=body.colour,
        probability=body.probability,
    )
    return StageOut.model_validate(stage)


@router.put("/pipelines/{pipeline_id}/stages/order", tags=["pipelines"])
def reorder_stages(
    pipeline_id: Id, body: StageOrderIn, session: SessionDep, clock: ClockDep
) -> list[StageOut]:
    """Put the stages in this order (every stage of the pipeline, once)."""
    pipeline = pipelines.get_pipeline(session, pipeline_id)
    ordered = pipelines.reorder_stages(session, pipeline, body.stage_ids, now=clock.now())
    return [StageOut.model_validate(s) for s in ordered]


@router.delete("/pipelines/{pipeline_id}/stages/{stage_id}", status_code=204, tags=["pipelines"])
def remove_stage(
    pipeline_id: Id,
    stage_id: Id,
    session: SessionDep,
    clock: ClockDep,
    move_to: IdQuery = None,
) -> Response:
    """Delete a stage. Refused (409) while deals are in it, unless `move_to` names another
    stage of the same pipeline to move them to first."""
    stage = pipelines.get_stage(session, pipeline_id, stage_id)
    delete_stage(session, stage, move_to=move_to, now=clock.now(), cause=Cause.API)
    return Response(status_code=204)


# ---- deal fields --------------------------------------------------------------------------


@router.get("/deal-fields", tags=["deal fields"])
def list_deal_fields(session: SessionDep) -> list[FieldOut]:
    return [FieldOut.model_validate(f) for f in fields.list_fields(session)]


@router.post("/deal-fields", status_code=201, tags=["deal fields"])
def create_deal_field(body: FieldIn, session: SessionDep, clock: ClockDep) -> FieldOut:
    row = fields.create_field(
        session, body.key, body.type, label=body.label, options=body.options, now=clock.now()
    )
    return FieldOut.model_validate(row)


@router.get("/deal-fields/{field_id}", tags=["deal fields"])
def get_deal_field(field_id: Id, session: SessionDep) -> FieldOut:
    return FieldOut.model_validate(fields.get_field(session, field_id))


@router.patch("/deal-fields/{field_id}", tags=["deal fields"])
def patch_deal_field(field_id: Id, body: FieldPatch, session: SessionDep) -> FieldOut:
    row = fields.update_field(
        session, fields.get_field(session, field_id), label=body.label, options=body.options
    )
    return FieldOut.model_validate(row)


@router.delete("/deal-fields/{field_id}", status_code=204, tags=["deal fields"])
def delete_deal_field(field_id: Id, session: SessionDep) -> Response:
    """Delete the definition; values already stored on deals stay in their history."""
    fields.delete_field(session, fields.get_field(session, field_id))
    return Response(status_code=204)
