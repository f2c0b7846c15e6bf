"""REST endpoints: send events (one, or a batch as a JSON array or NDJSON), a contact's timeline,
and the engagement section of GET /contacts/{id}."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.activities.service import Cause
from tidings.api.deps import ClockDep, SessionDep
from tidings.api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from tidings.api.schemas import Id
from tidings.contacts import service as contacts_service
from tidings.contacts.api import contact_extensions
from tidings.contacts.models import Contact
from tidings.contacts.schemas import ContactOut
from tidings.errors import ValidationFailed
from tidings.events.models import EventDaily
from tidings.events.service import MAX_BATCH, IngestReport, ingest_events
from tidings.events.validation import BadLine
from tidings.inputs import MAX_ID

router = APIRouter()
MAX_BODY_BYTES = 64 * 1024 * 1024
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")


class RejectedEventOut(BaseModel):
    index: int
    reason: str


class IngestOut(BaseModel):
    stored: int
    duplicates: int
    created_contacts: int
    rejected: list[RejectedEventOut]


class TimelineItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: str
    cause: str
    data: dict[str, Any]
    occurred_at: datetime
    event_id: str | None
    machine: bool


class TimelinePage(BaseModel):
    items: list[TimelineItem]
    next_cursor: str | None


def _out(report: IngestReport) -> IngestOut:
    return IngestOut(
        stored=report.stored,
        duplicates=report.duplicates,
        created_contacts=report.created_contacts,
        rejected=[RejectedEventOut(index=r.index, reason=r.reason) for r in report.rejected],
    )


async def _body(request: Request) -> bytes:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ValidationFailed(f"body: larger than {MAX_BODY_BYTES} bytes")
    return body


BodyDep = Annotated[bytes, Depends(_body)]


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"body: not valid JSON ({exc})") from None


@router.post("/events", status_code=201, tags=["events"])
def send_event(
    body: BodyDep, session: SessionDep, clock: ClockDep, create_contacts: bool = False
) -> IngestOut:
    """Record one event. Answers 422 naming the key if it is invalid."""
    report = ingest_events(
        session, [_json(body)], now=clock.now(), cause=Cause.API, create_contacts=create_contacts
    )
    if report.rejected:
        reason = report.rejected[0].reason  # "key: why"
        field, _, message = reason.partition(": ")
        raise ValidationFailed(reason, errors=[{"field": field, "message": message}])
    return _out(report)


def _parse_batch(request: Request, body: bytes) -> list[Any]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in NDJSON_TYPES or (kind != "application/json" and not body.lstrip().startswith(b"[")):
        return _ndjson(body)
    data = _json(body)
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        data = data["events"]
    if not isinstance(data, list):
        raise ValidationFailed('body: expected a JSON array of events, {"events": [...]} or NDJSON')
    return data


def _ndjson(body: bytes) -> list[Any]:
    """One event per line; a malformed line becomes a rejection named by its line number."""
    events: list[Any] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            events.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            events.append(BadLine(f"line {number}: not valid JSON ({exc})"))
    return events


@router.post("/events/batch", tags=["events"])
def send_events(
    request: Request,
    body: BodyDep,
    session: SessionDep,
    clock: ClockDep,
    create_contacts: bool = False,
) -> IngestOut:
    """Record up to 50,000 events (JSON array or NDJSON); invalid ones are reported by index
    (0-based position among the events), the rest stored."""
    events = _parse_batch(request, body)
    if len(events) > MAX_BATCH:
        raise ValidationFailed(f"body: {len(events)} events, at most {MAX_BATCH} per call")
    report = ingest_events(
        session, events, now=clock.now(), cause=Cause.API, create_contacts=create_contacts
    )
    return _out(report)


class DailyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    day: date
    type: str
    events: int
    machine_events: int
    amount_minor: int


@router.get("/events/daily", tags=["events"])
def daily(
    session: SessionDep,
    since: date | None = None,
    until: date | None = None,
    type: Annotated[list[str] | None, Query()] = None,
) -> list[DailyOut]:
    """Events per UTC day and type (exact even after raw events were pruned); `until` is
    inclusive. At most 10,000 rows."""
    query = select(EventDaily)
    if since is not None:
        query = query.where(EventDaily.day >= since)
    if until is not None:
        query = query.where(EventDaily.day <= until)
    if type:
        query = query.where(EventDaily.type.in_(type))
    rows = session.scalars(query.order_by(EventDaily.day, EventDaily.type).limit(10_000))
    return [DailyOut.model_validate(r) for r in rows]


# ---- timeline ----------------------------------------------------------------------------


def _encode(moment: datetime, last_id: int) -> str:
    text = f"t:{moment.isoformat()}|{last_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, rest = text.partition(":")
        moment, _, last_id = rest.partition("|")
        at, after = datetime.fromisoformat(moment), int(last_id)
        if kind != "t" or at.tzinfo is None or not 0 <= after <= MAX_ID:
            raise ValueError(kind)
        return at, after
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("cursor: not a cursor returned by this API") from None


# Other packages (deals) add activities to a contact's timeline that do not carry its id: each
# function returns a condition on Activity for a contact id.
timeline_extensions: list[Callable[[int], ColumnElement[bool]]] = []


@router.get("/contacts/{contact_id}/timeline", tags=["events"])
def timeline(
    contact_id: Id,
    session: SessionDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> TimelinePage:
    """The contact's activities and events, newest first by when they happened."""
    contacts_service.get_contact(session, contact_id)
    mine = Activity.contact_id == contact_id
    query = select(Activity).where(
        or_(mine, *(extend(contact_id) for extend in timeline_extensions))
    )
    if cursor:
        moment, last_id = _decode(cursor)
        query = query.where(
            or_(
                Activity.occurred_at < moment,
                and_(Activity.occurred_at == moment, Activity.id < last_id),
            )
        )
    query = query.order_by(Activity.occurred_at.desc(), Activity.id.desc()).limit(limit + 1)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return TimelinePage(
        items=[TimelineItem.model_validate(a) for a in rows],
        next_cursor=_encode(rows[-1].occurred_at, rows[-1].id) if more else None,
    )


# ---- engagement on the contact -------------------------------------------------------------


def engagement(contact: Contact) -> dict[str, Any]:
    return {
        "last_open_at": contact.last_open_at,
        "last_click_at": contact.last_click_at,
        "last_purchase_at": contact.last_purchase_at,
        "last_visit_at": contact.last_visit_at,
        "last_engaged_at": contact.last_engaged_at,
        "opens": contact.open_count,
        "clicks": contact.click_count,
        "purchases": contact.purchase_count,
        "visits": contact.visit_count,
        "purchase_total": contact.purchase_total_minor / 100,
        "purchase_total_minor": contact.purchase_total_minor,
    }


def _extend(session: Session, contact: Contact, out: ContactOut) -> None:
    out.engagement = engagement(contact)


if _extend not in contact_extensions:
    contact_extensions.append(_extend)
