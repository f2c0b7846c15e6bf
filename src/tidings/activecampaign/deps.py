"""The unit of work of an /api/3 request.

FastAPI runs the exit code of a request-scoped `yield` dependency after the response has been
sent, so a client could read its answer and send the next request before the transaction
committed (and see none of it). Here the session is function-scoped: the commit happens
before the response leaves, and a failing commit is answered as an error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from tidings.api.deps import DatabaseDep


def ac_session(database: DatabaseDep) -> Iterator[Session]:
    with database.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(ac_session, scope="function")]
