"""REST endpoints: preview a condition, saved segments, and their members."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from tidings.activities.service import Cause
from tidings.api.deps import ClockDep, ReadSessionDep, SessionDep
from tidings.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from tidings.api.schemas import Id, InputModel
from tidings.contacts.models import Contact
from tidings.contacts.schemas import ContactPage, ContactSummary
from tidings.segments import lists, service
from tidings.segments.models import Segment

router = APIRouter()
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


class PreviewIn(InputModel):
    condition: Any
    limit: int = Field(default=50, ge=1, le=MAX_LIMIT)


class PreviewOut(BaseModel):
    count: int
    items: list[ContactSummary]
    next_cursor: str | None


class SegmentIn(InputModel):
    name: str = Field(min_length=1, max_length=200)
    condition: Any


class SegmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    condition: Any
    created_at: datetime
    updated_at: datetime


def _page(
    session: SessionDep, where: Any, after: int | None, limit: int
) -> tuple[list[ContactSummary], str | None]:
    query = select(Contact).where(where)
    if after is not None:
        query = query.where(Contact.id > after)
    rows = list(session.scalars(query.order_by(Contact.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [ContactSummary.model_validate(c) for c in rows]
    return items, encode_cursor(rows[-1].id) if more else None


@router.post("/segments/preview", tags=["segments"])
def preview(body: PreviewIn, session: ReadSessionDep, clock: ClockDep) -> PreviewOut:
    """How many contacts match a condition, and the first page of them."""
    where = service.compile_checked(session, body.condition, clock.now())
    items, cursor = _page(session, where, None, body.limit)
    return PreviewOut(count=service.count(session, where), items=items, next_cursor=cursor)


@router.get("/segments", tags=["segments"])
def list_segments(session: SessionDep) -> list[SegmentOut]:
    rows = session.scalars(select(Segment).order_by(Segment.name))
    return [SegmentOut.model_validate(s) for s in rows]


@router.post("/segments", status_code=201, tags=["segments"])
def create_segment(body: SegmentIn, session: SessionDep, clock: ClockDep) -> SegmentOut:
    segment = service.save_segment(session, body.name, body.condition, now=clock.now())
    return SegmentOut.model_validate(segment)


@router.get("/segments/{segment_id}", tags=["segments"])
def get_segment(segment_id: Id, session: SessionDep) -> SegmentOut:
    return SegmentOut.model_validate(service.get_segment(session, segment_id))


@router.put("/segments/{segment_id}", tags=["segments"])
def replace_segment(
    segment_id: Id, body: SegmentIn, session: SessionDep, clock: ClockDep
) -> SegmentOut:
    segment = service.get_segment(session, segment_id)
    service.save_segment(session, body.name, body.condition, now=clock.now(), segment=segment)
    return SegmentOut.model_validate(segment)


@router.delete("/segments/{segment_id}", status_code=204, tags=["segments"])
def delete_segment(segment_id: Id, session: SessionDep) -> Response:
    session.delete(service.get_segment(session, segment_id))
    return Response(status_code=204)


@router.get("/segments/{segment_id}/contacts", tags=["segments"])
def segment_contacts(
    segment_id: Id,
    session: SessionDep,
    clock: ClockDep,
    cursor: str | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> ContactPage:
    """The contacts the saved segment matches now, by id, keyset-paginated."""
    segment = service.get_segment(session, segment_id)
    where = service.compile_checked(session, segment.condition, clock.now())
    items, next_cursor = _page(session, where, decode_cursor(cursor), limit)
    return ContactPage(items=items, next_cursor=next_cursor)


class ListSegmentIn(InputModel):
    segment: Any = Field(description="a condition, or the name of a saved segment")
    action: Literal["add", "remove"] = "add"


class ListSegmentOut(BaseModel):
    list_id: int
    action: str
    changed: int


@router.post("/lists/{list_id}/segment", tags=["lists"])
def apply_segment_to_list(
    list_id: Id, body: ListSegmentIn, session: SessionDep, clock: ClockDep
) -> ListSegmentOut:
    """Subscribe a segment's contacts to a list (not ones who left it), or unsubscribe them."""
    change = lists.change_list_by_segment(
        session, list_id, body.segment, body.action, now=clock.now(), cause=Cause.API
    )
    return ListSegmentOut(list_id=list_id, action=body.action, changed=change.changed)
