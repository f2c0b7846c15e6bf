"""FastAPI dependencies: the unit of work, the clock, the API key.

The unit of work follows the method: a GET (HEAD, OPTIONS) reads, in a transaction that never
takes SQLite's write lock; any other method may write, and takes the lock at its first
statement (after the key check and the body's validation, which use no transaction of it) until
it commits. A POST that only reads (a preview) asks for `ReadSessionDep`; a GET that writes
would ask for `WriteSessionDep` (a write in a read transaction fails).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from tidings.auth.service import API_KEY_STATE, UNAUTHORIZED, api_key_id
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


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_read_session(database: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    """A transaction that only reads (no write lock on SQLite)."""
    with database.read_session() as session:
        yield session


def get_write_session(database: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    """One transaction per request: committed if the endpoint returns, rolled back if it raises."""
    with database.session() as session:
        yield session


def get_session(
    request: Request, database: Annotated[Database, Depends(get_database)]
) -> Iterator[Session]:
    """The request's unit of work, chosen by its method (see the module's docstring)."""
    if request.method in READ_METHODS:
        yield from get_read_session(database)
    else:
        yield from get_write_session(database)


def require_api_key(request: Request, database: Annotated[Database, Depends(get_database)]) -> None:
    """The API key check. `tidings.api.guard` does it before the body is read and leaves the
    key's id in the request's state; a route reached without the guard checks here."""
    if getattr(request.state, API_KEY_STATE, None) is not None:
        return
    if api_key_id(database, request.headers.get("authorization", "")) is None:
        raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})


def refuse_nul_parameters(request: Request) -> None:
    """Path and query parameters of every route: one holding a NUL character is a 422 naming
    it (the same check request bodies get from `tidings.api.schemas.InputModel`)."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        if find_nul(value) is not None:
            raise ValidationFailed(
                f"{name}: {NUL_MESSAGE}", errors=[{"field": name, "message": NUL_MESSAGE}]
            )


# Function-scoped: the transaction ends (commits) when the endpoint returns, before the
# response is sent; request-scoped, FastAPI would commit after sending it, so a client could
# read its answer before the change was visible, and a failing commit would go unreported.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(get_write_session, scope="function")]
DatabaseDep = Annotated[Database, Depends(get_database)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
