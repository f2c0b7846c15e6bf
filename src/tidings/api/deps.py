"""FastAPI dependencies: the unit of work, the clock, the API key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from tidings.auth.service import find_api_key
from tidings.clock import Clock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.errors import ValidationFailed
from tidings.inputs import NUL_MESSAGE, find_nul


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(database: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    """One transaction per request: committed if the endpoint returns, rolled back if it raises."""
    with database.session() as session:
        yield session


def require_api_key(request: Request, session: Annotated[Session, Depends(get_session)]) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key or find_api_key(session, key.strip()) is None:
        raise HTTPException(
            401,
            "a valid API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )


def refuse_nul_parameters(request: Request) -> None:
    """Path and query parameters of every route: one holding a NUL character is a 422 naming
    it (the same check request bodies get from `tidings.api.schemas.InputModel`)."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        if find_nul(value) is not None:
            raise ValidationFailed(
                f"{name}: {NUL_MESSAGE}", errors=[{"field": name, "message": NUL_MESSAGE}]
            )


SessionDep = Annotated[Session, Depends(get_session)]
DatabaseDep = Annotated[Database, Depends(get_database)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
