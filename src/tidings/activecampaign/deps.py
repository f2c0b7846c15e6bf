"""The unit of work of an /api/3 request.

FastAPI runs the exit code of a request-scoped `yield` dependency after the response has been
sent, so a client could read its answer and send the next request before the transaction
committed (and see none of it). Here the session is function-scoped: the commit happens
before the response leaves, and a failing commit is answered as an error. As for /api/v1
(tidings.api.deps), a GET reads in a transaction that takes no write lock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tidings.api.deps import READ_METHODS, DatabaseDep


def ac_session(request: Request, database: DatabaseDep) -> Iterator[Session]:
    """A GET reads without SQLite's write lock; other methods may write (as /api/v1)."""
    if request.method in READ_METHODS:
        with database.read_session() as session:
            yield session
    else:
        with database.session() as session:
            yield session


SessionDep = Annotated[Session, Depends(ac_session, scope="function")]
