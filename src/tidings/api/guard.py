"""In front of every request: the API key check before the body is read, and the time budget.

A plain ASGI middleware, so an unauthenticated request to the API is refused with its 401
before anything reads (or waits for) its body, and everything after runs within the request's
time budget (tidings.db.budget), which the exception handlers turn into a 503 naming it.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.api.problems import problem
from tidings.auth.service import API_KEY_STATE, UNAUTHORIZED, api_key_id
from tidings.db.budget import time_budget
from tidings.db.engine import Database

API_PREFIX = "/api/v1/"


class RequestGuard:
    def __init__(self, app: ASGIApp, *, database: Database, budget_seconds: float | None) -> None:
        self.app = app
        self.database = database
        self.budget_seconds = budget_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(API_PREFIX):
            key_id = await run_in_threadpool(api_key_id, self.database, _authorization(scope))
            if key_id is None:
                refusal = problem(401, "Unauthorized", UNAUTHORIZED)
                refusal.headers["WWW-Authenticate"] = "Bearer"
                await refusal(scope, receive, send)
                return
            scope.setdefault("state", {})[API_KEY_STATE] = key_id
        with time_budget(self.budget_seconds):
            await self.app(scope, receive, send)


def _authorization(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return ""
