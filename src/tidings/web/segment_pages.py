"""Segments: a condition builder (static/segment-builder.js) with the JSON beside it and the
live count of matching contacts, saved segments, export."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.api.deps import ClockDep, ReadSessionDep
from tidings.api.schemas import Id
from tidings.contacts import repository
from tidings.contacts.models import Contact, MailingList, Tag
from tidings.contacts.policy import ContactStatus
from tidings.errors import TidingsError, ValidationFailed
from tidings.events.validation import BUILTIN_TYPES
from tidings.segments import service as segments
from tidings.segments.conditions import (
    BOOL_OPS,
    DATE_TEXT_OPS,
    LIST_OPS,
    NUMBER_FIELDS,
    NUMBER_OPS,
    TEXT_FIELDS,
    TEXT_OPS,
    TIME_FIELDS,
    TIME_OPS,
)
from tidings.segments.models import Segment
from tidings.web.security import LoginDep, PageSessionDep, check_csrf
from tidings.web.templating import render

router = APIRouter(dependencies=[Depends(check_csrf)])
MAX_CONDITION = 100_000
# How each kind of field compares (the builder offers these ops).
OPS = {
    "text": sorted(TEXT_OPS),
    "number": sorted(NUMBER_OPS),
    "time": sorted(TIME_OPS),
    "bool": sorted(BOOL_OPS),
    "date": sorted(DATE_TEXT_OPS),
    "list": sorted(LIST_OPS),
}
CUSTOM_KINDS = {
    "text": "text",
    "single_choice": "text",
    "number": "number",
    "boolean": "bool",
    "date": "date",
    "multi_choice": "list",
}


def catalog(session: Session) -> dict[str, Any]:
    """What the builder offers: fields with their kind, tags, lists, statuses, event types."""
    fields: list[dict[str, Any]] = [{"name": n, "kind": "text"} for n in sorted(TEXT_FIELDS)]
    fields += [{"name": n, "kind": "number"} for n in sorted(NUMBER_FIELDS)]
    fields += [{"name": n, "kind": "time"} for n in sorted(TIME_FIELDS)]
    for key, definition in sorted(repository.field_definitions(session).items()):
        fields.append({"name": key, "kind": CUSTOM_KINDS[definition.type.value], "custom": True})
    return {
        "fields": fields,
        "ops": OPS,
        "tags": list(session.scalars(select(Tag.name).order_by(Tag.name).limit(1000))),
        "lists": list(session.scalars(select(MailingList.name).order_by(MailingList.name))),
        "statuses": [s.value for s in ContactStatus],
        "events": sorted(BUILTIN_TYPES),
    }


def parse_json(text: str) -> Any:
    """The condition text of the form; blank means every contact (None)."""
    if not text.strip():
        return None
    if len(text) > MAX_CONDITION:
        raise ValidationFailed(f"condition: at most {MAX_CONDITION} characters")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"condition: not valid JSON ({exc})") from None


def count_matching(session: Session, condition: Any, now: Any) -> int:
    if condition is None:
        return int(session.scalar(select(func.count()).select_from(Contact)) or 0)
    return segments.count(session, segments.compile_checked(session, condition, now, counting=True))


def _page(
    request: Request,
    session: Session,
    *,
    segment: Segment | None = None,
    condition: Any = None,
    name: str = "",
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    if condition is None and segment is not None:
        condition = segment.condition
    context: dict[str, Any] = {
        "saved": list(session.execute(select(Segment.id, Segment.name).order_by(Segment.name))),
        "segment": segment,
        "name": name or (segment.name if segment else ""),
        "condition": condition,
        "catalog": catalog(session),
    }
    return render(request, "segments.html", context, nav="segments", status=status, errors=errors)


@router.get("/admin/segments", response_class=HTMLResponse)
def segments_page(request: Request, login: LoginDep, session: PageSessionDep) -> HTMLResponse:
    return _page(request, session)


@router.get("/admin/segments/{segment_id}", response_class=HTMLResponse)
def segment_page(
    request: Request, segment_id: Id, login: LoginDep, session: PageSessionDep
) -> HTMLResponse:
    return _page(request, session, segment=segments.get_segment(session, segment_id))


@router.post("/admin/segments/count", response_class=HTMLResponse)
def live_count(
    request: Request,
    login: LoginDep,
    session: ReadSessionDep,
    clock: ClockDep,
    condition: Annotated[str, Form(max_length=MAX_CONDITION)] = "",
) -> HTMLResponse:
    """The builder's live count (an htmx partial): the number, or the error at its path. It
    only reads, so it never holds SQLite's write lock while it counts."""
    try:
        found = count_matching(session, parse_json(condition), clock.now())
    except TidingsError as exc:
        return render(request, "partials/segment_count.html", {"error": exc.detail}, status=422)
    return render(request, "partials/segment_count.html", {"count": found})


@router.post("/admin/segments", response_class=HTMLResponse)
def save(
    request: Request,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    name: Annotated[str, Form(max_length=200)] = "",
    condition: Annotated[str, Form(max_length=MAX_CONDITION)] = "",
    segment_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    segment = None
    if segment_id.isdigit():
        segment = segments.get_segment(session, int(segment_id))
    parsed: Any = None
    try:
        parsed = parse_json(condition)
        if parsed is None:
            raise ValidationFailed("condition: add at least one condition")
        saved = segments.save_segment(session, name, parsed, now=clock.now(), segment=segment)
    except TidingsError as exc:
        field, _, message = exc.detail.partition(": ")
        errors = {"name": message} if field == "name" or "named" in exc.detail else {}
        errors = errors or {"condition": exc.detail}
        return _page(
            request,
            session,
            segment=segment,
            condition=parsed,
            name=name,
            status=422,
            errors=errors,
        )
    return RedirectResponse(f"/admin/segments/{saved.id}?saved=1", status_code=303)
