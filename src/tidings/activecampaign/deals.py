"""/api/3 deals (value in cents, lower-case currency, status 0/1/2, group/stage/owner),
deal notes, dealGroups (pipelines, side-loading their dealStages) and dealStages (with
`PUT /dealStages/{id}/deals` moving all its deals), through tidings.deals' services."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from tidings.activecampaign import deal_shapes, shapes
from tidings.activecampaign.bodies import AcId, ACModel, OptionalId
from tidings.activecampaign.deps import SessionDep
from tidings.activecampaign.envelopes import id_filter, int_param, meta, page, time_filter
from tidings.activecampaign.errors import ac_json
from tidings.activities.service import Cause
from tidings.api.deps import ClockDep
from tidings.api.schemas import Id
from tidings.contacts.models import Contact
from tidings.deals import pipelines, service, tasks
from tidings.deals.models import Deal, Note, Pipeline, Stage
from tidings.deals.moves import move_deals
from tidings.deals.validation import MAX_VALUE, DealInput
from tidings.errors import NotFound, field_error
from tidings.inputs import MAX_ID

router = APIRouter()


class DealFields(ACModel):
    title: str | None = Field(default=None, max_length=300)
    description: str | None = Field(default=None, max_length=100_000)
    value: int | None = Field(default=None, ge=0, le=MAX_VALUE)
    currency: str | None = Field(default=None, max_length=3)
    contact: OptionalId = None
    owner: OptionalId = None
    group: OptionalId = None
    stage: OptionalId = None
    status: int | None = Field(default=None, ge=0, le=2)


class DealBody(ACModel):
    deal: DealFields


def _input(given: DealFields) -> DealInput:
    item = DealInput()
    for attribute, name in (
        ("title", "title"),
        ("description", "description"),
        ("value", "value"),
        ("currency", "currency"),
        ("contact", "contact_id"),
        ("owner", "owner_id"),
        ("group", "pipeline_id"),
        ("stage", "stage_id"),
    ):
        if attribute in given.model_fields_set:
            value = getattr(given, attribute)
            if name.endswith("_id") and value == 0:
                value = None  # ActiveCampaign writes "0" for none
            setattr(item, name, value)
            item.given.add(name)
    if given.status is not None:
        item.status = deal_shapes.STATUS_OF[str(given.status)]
        item.given.add("status")
    return item


def _deal(session: Session, deal_id: int) -> Deal:
    try:
        return service.get_deal(session, deal_id)
    except NotFound:
        raise NotFound(f"No Result found for Deal with id {deal_id}") from None


def _answer(session: Session, deal: Deal, status: int = 200) -> JSONResponse:
    contact = session.get(Contact, deal.contact_id) if deal.contact_id is not None else None
    contacts = [shapes.contact(contact)] if contact is not None else []
    return ac_json({"contacts": contacts, "deal": deal_shapes.deal(deal)}, status)


@router.post("/deals")
def create_deal(body: DealBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    item = _input(body.deal)
    item.given |= {"status"}
    item.status = item.status or "open"
    deal = service.create_deal(session, item, now=clock.now(), cause=Cause.API)
    return _answer(session, deal, 201)


@router.get("/deals/{deal_id}")
def get_deal(deal_id: Id, session: SessionDep) -> JSONResponse:
    return _answer(session, _deal(session, deal_id))


@router.put("/deals/{deal_id}")
def update_deal(deal_id: Id, body: DealBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    deal = _deal(session, deal_id)
    deal = service.update_deal(session, deal, _input(body.deal), now=clock.now(), cause=Cause.API)
    return _answer(session, deal)


@router.delete("/deals/{deal_id}")
def delete_deal(deal_id: Id, session: SessionDep, clock: ClockDep) -> JSONResponse:
    service.delete_deal(session, _deal(session, deal_id), now=clock.now(), cause=Cause.API)
    return ac_json({})


def _status_filter(raw: str) -> Any:
    status = deal_shapes.STATUS_OF.get(raw.strip())
    if status is None:
        raise field_error("filters[status]", "must be 0 (open), 1 (won) or 2 (lost)")
    return Deal.status == status


def _search(raw: str) -> Any:
    pattern = "%" + raw.strip().replace("%", "") + "%"
    return or_(Deal.title.ilike(pattern), Deal.description.ilike(pattern))


def _dollars(raw: str, name: str) -> int:
    """ActiveCampaign's value filters are in whole currency units; values are stored in cents."""
    return int_param(raw, f"filters[{name}]", maximum=MAX_VALUE // 100) * 100


DEAL_FILTERS = {
    "search": _search,
    "title": lambda raw: Deal.title.ilike("%" + raw.strip() + "%"),
    "stage": id_filter(Deal.stage_id, "stage"),
    "group": id_filter(Deal.pipeline_id, "group"),
    "status": _status_filter,
    "owner": id_filter(Deal.owner_id, "owner"),
    "contact": id_filter(Deal.contact_id, "contact"),
    "created_before": time_filter(Deal.created_at, after=False),
    "created_after": time_filter(Deal.created_at, after=True),
    "updated_before": time_filter(Deal.updated_at, after=False),
    "updated_after": time_filter(Deal.updated_at, after=True),
    "minimum_value": lambda raw: Deal.value >= _dollars(raw, "minimum_value"),
    "maximum_value": lambda raw: Deal.value <= _dollars(raw, "maximum_value"),
}
DEAL_ORDERS = {
    "title": Deal.title,
    "value": Deal.value,
    "cdate": Deal.created_at,
    "mdate": Deal.updated_at,
    "score": Deal.score,
    "contact_name": Deal.contact_id,
    "next-action": Deal.position,
}


@router.get("/deals")
def list_deals(request: Request, session: SessionDep) -> JSONResponse:
    rows, total = page(
        session, select(Deal), request, id_column=Deal.id, filters=DEAL_FILTERS, orders=DEAL_ORDERS
    )
    deals = [deal_shapes.deal(r[0]) for r in rows]
    return ac_json({"deals": deals, "meta": meta(total, currencies={})})


class NoteFields(ACModel):
    note: str = Field(max_length=100_000)


class NoteBody(ACModel):
    note: NoteFields


@router.post("/deals/{deal_id}/notes")
def create_deal_note(
    deal_id: Id, body: NoteBody, session: SessionDep, clock: ClockDep
) -> JSONResponse:
    _deal(session, deal_id)
    note = tasks.create_note(
        session,
        body.note.note,
        deal_id=deal_id,
        contact_id=None,
        author_id=None,
        now=clock.now(),
        cause=Cause.API,
    )
    return ac_json({"note": deal_shapes.note(note)}, 201)


@router.put("/deals/{deal_id}/notes/{note_id}")
def update_deal_note(
    deal_id: Id, note_id: Id, body: NoteBody, session: SessionDep, clock: ClockDep
) -> JSONResponse:
    note = session.get(Note, note_id)
    if note is None or note.deal_id != deal_id:
        raise NotFound(f"No Result found for Note with id {note_id}")
    note = tasks.update_note(session, note, body.note.note, now=clock.now())
    return ac_json({"note": deal_shapes.note(note)})


@router.get("/deals/{deal_id}/notes")
def deal_notes(deal_id: Id, session: SessionDep) -> JSONResponse:
    _deal(session, deal_id)
    notes = tasks.note_page(session, deal_id=deal_id, contact_id=None, before_id=None, limit=100)
    return ac_json({"notes": [deal_shapes.note(n) for n in notes], "meta": meta(len(notes))})


# ---- dealGroups (pipelines) ---------------------------------------------------------------

DEFAULT_STAGES = ("To Contact", "In Contact", "Follow Up")  # what ActiveCampaign starts with


class GroupFields(ACModel):
    title: str | None = Field(default=None, max_length=200)
    currency: str | None = Field(default=None, max_length=3)


class GroupBody(ACModel):
    dealGroup: GroupFields


def _group(session: Session, group_id: int) -> Pipeline:
    row = session.get(Pipeline, group_id)
    if row is None:
        raise NotFound(f"No Result found for DealGroup with id {group_id}")
    return row


def _group_answer(session: Session, row: Pipeline, status: int = 200) -> JSONResponse:
    stages = pipelines.stages_of(session, row.id)
    return ac_json(
        {
            "dealStages": [deal_shapes.stage(s) for s in stages],
            "dealGroup": deal_shapes.pipeline(row, [s.id for s in stages]),
        },
        status,
    )


@router.post("/dealGroups")
def create_group(body: GroupBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    given = body.dealGroup
    if not given.title or not given.title.strip():
        raise field_error("title", "a pipeline needs a title")
    row = pipelines.create_pipeline(
        session,
        given.title,
        given.currency or "usd",
        [pipelines.StageSpec(title) for title in DEFAULT_STAGES],
        now=clock.now(),
    )
    return _group_answer(session, row, 201)


@router.get("/dealGroups/{group_id}")
def get_group(group_id: Id, session: SessionDep) -> JSONResponse:
    return _group_answer(session, _group(session, group_id))


@router.put("/dealGroups/{group_id}")
def update_group(
    group_id: Id, body: GroupBody, session: SessionDep, clock: ClockDep
) -> JSONResponse:
    row = pipelines.update_pipeline(
        session,
        _group(session, group_id),
        now=clock.now(),
        name=body.dealGroup.title or None,
        currency=body.dealGroup.currency or None,
    )
    return _group_answer(session, row)


@router.delete("/dealGroups/{group_id}")
def delete_group(group_id: Id, session: SessionDep) -> JSONResponse:
    pipelines.delete_pipeline(session, _group(session, group_id))
    return ac_json({})


@router.get("/dealGroups")
def list_groups(request: Request, session: SessionDep) -> JSONResponse:
    rows, total = page(
        session,
        select(Pipeline),
        request,
        id_column=Pipeline.id,
        filters={"title": lambda raw: Pipeline.name.ilike("%" + raw.strip() + "%")},
        orders={"title": Pipeline.name, "popular": Pipeline.id},
    )
    grouped = pipelines.stages_by_pipeline(session)
    groups = [deal_shapes.pipeline(r[0], [s.id for s in grouped.get(r[0].id, [])]) for r in rows]
    stages = [deal_shapes.stage(s) for r in rows for s in grouped.get(r[0].id, [])]
    return ac_json({"dealGroups": groups, "dealStages": stages, "meta": meta(total)})


# ---- dealStages ---------------------------------------------------------------------------


class StageFields(ACModel):
    title: str | None = Field(default=None, max_length=200)
    group: OptionalId = None
    order: int | None = Field(default=None, ge=0, le=MAX_ID)
    color: str | None = Field(default=None, max_length=7)


class StageBody(ACModel):
    dealStage: StageFields


def _stage(session: Session, stage_id: int) -> Stage:
    row = session.get(Stage, stage_id)
    if row is None:
        raise NotFound(f"No Result found for DealStage with id {stage_id}")
    return row


def _colour(raw: str | None) -> str | None:
    if not raw:
        return None
    return raw if raw.startswith("#") else "#" + raw


@router.post("/dealStages")
def create_stage(body: StageBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    given = body.dealStage
    if not given.group:
        raise field_error("group", "a stage needs its pipeline (group)")
    pipeline = session.get(Pipeline, given.group)
    if pipeline is None:
        raise field_error("group", f"pipeline {given.group} does not exist")
    if not given.title:
        raise field_error("title", "a stage needs a title")
    count = len(pipelines.stages_of(session, pipeline.id))
    position = None if given.order is None else max(0, min(given.order - 1, count))
    stage = pipelines.add_stage(
        session,
        pipeline,
        pipelines.StageSpec(given.title, _colour(given.color)),
        position=position,
        now=clock.now(),
    )
    return ac_json({"dealStage": deal_shapes.stage(stage)}, 201)


@router.get("/dealStages/{stage_id}")
def get_stage(stage_id: Id, session: SessionDep) -> JSONResponse:
    return ac_json({"dealStage": deal_shapes.stage(_stage(session, stage_id))})


@router.put("/dealStages/{stage_id}")
def update_stage(
    stage_id: Id, body: StageBody, session: SessionDep, clock: ClockDep
) -> JSONResponse:
    given = body.dealStage
    stage = pipelines.update_stage(
        session,
        _stage(session, stage_id),
        now=clock.now(),
        title=given.title or None,
        colour=_colour(given.color),
    )
    return ac_json({"dealStage": deal_shapes.stage(stage)})


@router.delete("/dealStages/{stage_id}")
def delete_stage(stage_id: Id, session: SessionDep, clock: ClockDep) -> JSONResponse:
    pipelines.remove_stage(session, _stage(session, stage_id), now=clock.now())
    return ac_json({})


@router.get("/dealStages")
def list_stages(request: Request, session: SessionDep) -> JSONResponse:
    rows, total = page(
        session,
        select(Stage),
        request,
        id_column=Stage.id,
        filters={
            "d_groupid": id_filter(Stage.pipeline_id, "d_groupid"),
            "group": id_filter(Stage.pipeline_id, "group"),
            "title": lambda raw: Stage.title.ilike("%" + raw.strip() + "%"),
        },
        orders={"title": Stage.title, "order": Stage.position},
    )
    return ac_json({"dealStages": [deal_shapes.stage(r[0]) for r in rows], "meta": meta(total)})


class MoveFields(ACModel):
    stage: AcId


class MoveBody(ACModel):
    deals: MoveFields


@router.put("/dealStages/{stage_id}/deals")
def move_stage_deals(
    stage_id: Id, body: MoveBody, session: SessionDep, clock: ClockDep
) -> JSONResponse:
    """Move every deal of this stage to another (one set-based move, as /api/v1's bulk move)."""
    source = _stage(session, stage_id)
    target = pipelines.stage_named(session, body.deals.stage, "stage")
    move_deals(
        session,
        Deal.stage_id == source.id,
        target,
        now=clock.now(),
        cause=Cause.API,
        afterwards=Deal.stage_id == target.id,
    )
    return ac_json({"dealStage": deal_shapes.stage(source)})
