"""Event tracking as ActiveCampaign's site-tracking libraries speak it.

- `POST /event` (form-encoded `actid`, `key`, `event`, `eventdata`, `visit={"email": ...}`;
  ActiveCampaign serves it at trackcmp.net/event) records a custom event `custom:<event>` for
  the contact with that email through the events service, and answers
  `{"success": 1, "message": "Event spawned"}`. `key` is a Tidings API key; `actid` is
  accepted and ignored. Names are kept to letters, digits, `_ . -` (other characters become
  `_`).
- `/api/3/eventTrackingEvents`: the event names; a name exists once an event of it was
  recorded (creating one answers it, and it is listed after its first event).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import select

from tidings.activecampaign.bodies import ACModel
from tidings.activecampaign.deps import SessionDep
from tidings.activecampaign.envelopes import meta
from tidings.activecampaign.errors import ac_json
from tidings.activities.models import Activity
from tidings.activities.service import Cause
from tidings.api.deps import ClockDep
from tidings.auth.service import find_api_key
from tidings.events.service import ingest_events
from tidings.events.validation import CUSTOM_PREFIX
from tidings.inputs import find_nul

router = APIRouter()  # under /api/3
public_router = APIRouter()  # at the root, as trackcmp.net/event
MAX_FORM_BYTES = 64 * 1024


def event_name(raw: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", raw.strip())[:56]


class EventFields(ACModel):
    name: str = Field(min_length=1, max_length=56)


class EventBody(ACModel):
    eventTrackingEvent: EventFields


@router.post("/eventTrackingEvents")
def create_event_name(body: EventBody) -> JSONResponse:
    return ac_json({"eventTrackingEvent": {"name": event_name(body.eventTrackingEvent.name)}}, 201)


@router.get("/eventTrackingEvents")
def list_event_names(session: SessionDep) -> JSONResponse:
    types = session.scalars(
        select(Activity.type).where(Activity.type.like(CUSTOM_PREFIX + "%")).distinct()
    ).all()
    names = sorted(t[len(CUSTOM_PREFIX) :] for t in types)
    return ac_json({"eventTrackingEvents": [{"name": n} for n in names], "meta": meta(len(names))})


@router.delete("/eventTrackingEvents/{name}")
def delete_event_name(name: str) -> JSONResponse:
    """Recorded events stay in the contacts' history; there is no name to delete."""
    return ac_json({})


def _answer(success: bool, message: str, status: int = 200) -> JSONResponse:
    return ac_json({"success": 1 if success else 0, "message": message}, status)


def _form(body: bytes) -> dict[str, str] | None:
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return None


def _email(visit: str) -> str | None:
    try:
        data: Any = json.loads(visit)
    except ValueError:
        return None
    email = data.get("email") if isinstance(data, dict) else None
    return email if isinstance(email, str) and email.strip() else None


_EVENT_ANSWERS: dict[int | str, dict[str, Any]] = {
    403: {"description": "`key` is not a valid API key."},
    413: {"description": "The form is too large."},
    422: {"description": "The form is not valid (`message` says why)."},
}


@public_router.post("/event", tags=["activecampaign"], responses=_EVENT_ANSWERS)
async def track_event(request: Request, session: SessionDep, clock: ClockDep) -> JSONResponse:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _answer(False, f"the form is larger than {MAX_FORM_BYTES} bytes", 413)
    form = _form(body)
    if form is None or any(find_nul(v) is not None for v in form.values()):
        return _answer(False, "the body is not a form (application/x-www-form-urlencoded)", 422)
    if not form.get("key") or find_api_key(session, form["key"].strip()) is None:
        return _answer(False, "key: not a valid key", 403)
    name = event_name(form.get("event", ""))
    if not name:
        return _answer(False, "event: required", 422)
    email = _email(form.get("visit", ""))
    if email is None:
        return _answer(False, 'visit: required, as {"email": "..."}', 422)
    event = {"type": "custom", "name": name, "email": email}
    if form.get("eventdata"):
        event["properties"] = {"eventdata": form["eventdata"][:2048]}  # type: ignore[assignment]
    report = ingest_events(session, [event], now=clock.now(), cause=Cause.TRACKING)
    if report.rejected:
        return _answer(False, report.rejected[0].reason, 422)
    return _answer(True, "Event spawned")
