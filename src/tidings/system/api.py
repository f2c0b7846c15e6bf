"""REST endpoint: system automation runs - list (filters, keyset pages, newest first)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from tidings.api.deps import SessionDep
from tidings.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from tidings.system.listing import SystemRunOut, list_runs

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
