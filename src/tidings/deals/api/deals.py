"""REST: /deals, their bulk move, timeline and score."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.api.deps import ClockDep, SessionDep
from tidings.api.pagination import DEFAULT_LIMIT, decode_cursor, encode_cursor
from tidings.api.schemas import Id, InputModel
from tidings.contacts.schemas import ActivityOut, ActivityPage
from tidings.deals import ordering, repository, scoring, service, timeline
from tidings.deals.api.common import IdQuery, LimitQuery, Money, MoneyQuery
from tidings.deals.models import Deal
from tidings.deals.moves import MAX_BULK, move_deal_ids
from tidings.deals.pipelines import stage_named
from tidings.deals.validation import MAX_CONTACTS, DealInput, DealStatus

router = APIRouter(tags=["deals"])
POSITION = Field(default=None, ge=-(2**62), le=2**62, description="card order in the stage")


class DealIn(InputModel):
    title: str = Field(max_length=300)
    description: str | None = Field(default=None, max_length=100_000)
    value: Money = Field(default=0, description="minor units (cents), not negative")
    currency: str | None = Field(default=None, description="ISO 4217; default the pipeline's")
    contact_id: Id | None = Field(default=None, description="the primary contact")
    contact_ids: list[Id] = Field(default_factory=list, max_length=MAX_CONTACTS)
    owner_id: Id | None = None
    pipeline_id: Id | None = None
    stage_id: Id | None = Field(default=None, description="default: the pipeline's first")
    status: DealStatus = DealStatus.OPEN
    lost_reason: str | None = Field(default=None, max_length=10_000)
    closed_at: AwareDatetime | None = Field(default=None, description="default: now")
    expected_close: date | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    position: int | None = POSITION


class DealPatch(InputModel):
    title: str | None = Field(default=None, max_length=300)
    description: str | None = Field(default=None, max_length=100_000)
    value: Money | None = None
    currency: str | None = None
    contact_id: Id | None = None
    contact_ids: list[Id] | None = Field(default=None, max_length=MAX_CONTACTS)
    owner_id: Id | None = None
    pipeline_id: Id | None = None
    stage_id: Id | None = None
    status: DealStatus | None = None
    lost_reason: str | None = Field(default=None, max_length=10_000)
    closed_at: AwareDatetime | None = None
    expected_close: date | None = None
    fields: dict[str, Any] | None = None
    position: int | None = POSITION


class DealOut(BaseModel):
    id: int
    title: str
    description: str | None
    value: int
    currency: str
    contact_id: int | None
    contact_ids: list[int]
    owner_id: int | None
    pipeline_id: int
    stage_id: int
    status: str
    closed_at: datetime | None
    lost_reason: str | None
    expected_close: date | None
    fields: dict[str, Any]
    score: int
    position: int
    created_at: datetime
    updated_at: datetime


class DealPage(BaseModel):
    items: list[DealOut]
    next_cursor: str | None


class BulkMoveIn(InputModel):
    deal_ids: list[Id] = Field(min_length=1, max_length=MAX_BULK)
    stage_id: Id


class BulkMoveOut(BaseModel):
    moved: int


class RepositionIn(InputModel):
    before_id: Id | None = Field(default=None, description="put the deal just before this one")
    after_id: Id | None = Field(default=None, description="or just after this one")


class ScoreLineOut(BaseModel):
    rule_id: int
    rule: str
    points: int
    matched_at: datetime
    holds: bool


class ScoreOut(BaseModel):
    score: int
    rules: list[ScoreLineOut]


def _outs(session: Session, deals: list[Deal]) -> list[DealOut]:
    further = service.further_contacts(session, [d.id for d in deals])
    return [
        DealOut(
            id=d.id,
            title=d.title,
            description=d.description,
            value=d.value,
            currency=d.currency,
            contact_id=d.contact_id,
            contact_ids=[*([d.contact_id] if d.contact_id else []), *further.get(d.id, [])],
            owner_id=d.owner_id,
            pipeline_id=d.pipeline_id,
            stage_id=d.stage_id,
            status=d.status,
            closed_at=d.closed_at,
            lost_reason=d.lost_reason,
            expected_close=d.expected_close,
            fields=d.fields or {},
            score=d.score,
            position=d.position,
            created_at=d.created_at,
            updated_at=d.updated_at,
        )
        for d in deals
    ]


def _input(body: DealIn | DealPatch) -> DealInput:
    given = set(body.model_fields_set)
    values = {name: getattr(body, name) for name in given}
    if "status" in values and values["status"] is not None:
        values["status"] = values["status"].value
    return DealInput(given=given, **values)


@router.get("/deals")
def list_deals(
    session: SessionDep,
    pipeline: IdQuery = None,
    stage: IdQuery = None,
    status: DealStatus | None = None,
    owner: IdQuery = None,
    contact: IdQuery = None,
    value_min: MoneyQuery = None,
    value_max: MoneyQuery = None,
    created_since: AwareDatetime | None = None,
    updated_since: AwareDatetime | None = None,
    closed_since: AwareDatetime | None = None,
    q: Annotated[str | None, Query(max_length=200, description="text in the title")] = None,
    cursor: str | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> DealPage:
    where = repository.DealFilter(
        pipeline_id=pipeline,
        stage_id=stage,
        status=status.value if status else None,
        owner_id=owner,
        contact_id=contact,
        value_min=value_min,
        value_max=value_max,
        created_since=created_since,
        updated_since=updated_since,
        closed_since=closed_since,
        text=q,
    )
    rows = repository.deal_page(session, where, after_id=decode_cursor(cursor), limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return DealPage(
        items=_outs(session, rows), next_cursor=encode_cursor(rows[-1].id) if more else None
    )


@router.post("/deals", status_code=201)
def create_deal(body: DealIn, session: SessionDep, clock: ClockDep) -> DealOut:
    item = _input(body)
    item.given |= {"status"}
    deal = service.create_deal(session, item, now=clock.now(), cause=Cause.API)
    return _outs(session, [deal])[0]


@router.post("/deals/bulk/move")
def bulk_move(body: BulkMoveIn, session: SessionDep, clock: ClockDep) -> BulkMoveOut:
    """Move up to 10,000 deals to a stage (of any pipeline) in one set-based change; deals
    already in it are left alone and write nothing."""
    stage = stage_named(session, body.stage_id, "stage_id")
    moved = move_deal_ids(session, body.deal_ids, stage, now=clock.now(), cause=Cause.API)
    return BulkMoveOut(moved=moved)


@router.get("/deals/{deal_id}")
def get_deal(deal_id: Id, session: SessionDep) -> DealOut:
    return _outs(session, [service.get_deal(session, deal_id)])[0]


@router.patch("/deals/{deal_id}")
def patch_deal(deal_id: Id, body: DealPatch, session: SessionDep, clock: ClockDep) -> DealOut:
    deal = service.get_deal(session, deal_id)
    deal = service.update_deal(session, deal, _input(body), now=clock.now(), cause=Cause.API)
    return _outs(session, [deal])[0]


@router.post("/deals/{deal_id}/reposition")
def reposition_deal(
    deal_id: Id, body: RepositionIn, session: SessionDep, clock: ClockDep
) -> DealOut:
    """Put a deal just before or just after another deal of its board column (same pipeline,
    stage and status): a pure reorder, with no timeline entry and no trigger."""
    deal = service.get_deal(session, deal_id)
    ordering.reposition(session, deal, before_id=body.before_id, after_id=body.after_id)
    return _outs(session, [service.get_deal(session, deal_id)])[0]


@router.delete("/deals/{deal_id}", status_code=204)
def delete_deal(deal_id: Id, session: SessionDep, clock: ClockDep) -> Response:
    """Delete a deal with its tasks and notes; its timeline stays."""
    deal = service.get_deal(session, deal_id)
    service.delete_deal(session, deal, now=clock.now(), cause=Cause.API)
    return Response(status_code=204)


@router.get("/deals/{deal_id}/timeline")
def deal_timeline(
    deal_id: Id, session: SessionDep, cursor: str | None = None, limit: LimitQuery = 100
) -> ActivityPage:
    """Every change of the deal (and its tasks, notes, scores), newest first."""
    service.get_deal(session, deal_id)
    rows = timeline.timeline(session, deal_id, before_id=decode_cursor(cursor), limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return ActivityPage(
        items=[ActivityOut.model_validate(a) for a in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )


@router.get("/deals/{deal_id}/score")
def deal_score(deal_id: Id, session: SessionDep) -> ScoreOut:
    """The deal's score and the rule matches behind it."""
    deal = service.get_deal(session, deal_id)
    lines = [
        ScoreLineOut.model_validate(line, from_attributes=True)
        for line in scoring.explain(session, deal_id)
    ]
    return ScoreOut(score=deal.score, rules=lines)
