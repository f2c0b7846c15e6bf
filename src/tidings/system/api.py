"""REST endpoints: system automation runs - list (filters, keyset pages, newest first) and start
one now ("run now", idempotent by its key)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import uuid4

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from tidings.api.deps import ClockDep, SessionDep
from tidings.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from tidings.api.schemas import Id, InputModel
from tidings.system.listing import SystemRunOut, get_run, list_runs
from tidings.system.starts import start_now

router = APIRouter(tags=["system"])


class SystemRunPage(BaseModel):
    items: list[SystemRunOut]
    next_cursor: str | None


@router.get("/system/runs")
def system_runs(
    session: SessionDep,
    automation: Annotated[str | None, Query(max_length=200)] = None,
    state: Literal["ready", "waiting", "done", "failed"] | None = None,
    since: datetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> SystemRunPage:
    """Runs of system automations, newest first; `since` keeps runs started at or after it."""
    items, more = list_runs(
        session,
        automation=automation,
        state=state,
        since=since,
        before_id=decode_cursor(cursor),
        limit=limit,
    )
    return SystemRunPage(
        items=items, next_cursor=encode_cursor(items[-1].id) if more and items else None
    )


class RunNowIn(InputModel):
    key: str | None = Field(
        default=None,
        max_length=100,
        description="names this request: sent again, it starts no second run (default: new)",
    )


@router.post("/system/automations/{automation_id}/runs", status_code=201)
def run_now(
    automation_id: Id,
    session: SessionDep,
    clock: ClockDep,
    response: Response,
    body: RunNowIn | None = None,
) -> SystemRunOut:
    """Start a run of an active system automation now; the worker advances it. 201 with the
    run, or 200 with the run this key started before."""
    run_id, started = start_now(
        session, automation_id, key=(body.key if body else None) or uuid4().hex, now=clock.now()
    )
    if not started:
        response.status_code = 200
    return get_run(session, run_id)
