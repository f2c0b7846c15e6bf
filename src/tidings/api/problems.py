"""Every error leaves the API as application/problem+json (RFC 9457); never a bare 500 page."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tidings.api.schemas import NUL_ERROR
from tidings.db import budget
from tidings.db.engine import Database
from tidings.errors import TidingsError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("tidings.api")
EXPRESSION_TOO_LARGE = (
    "too large for the database to evaluate at once (SQLite: Expression tree is too large); "
    "use fewer or less deeply nested conditions"
)


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update({k: v for k, v in extra.items() if v})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "contacts", 3, "email") -> "contacts[3].email"
    path = ""
    for part in loc:
        if part in ("body", "query", "path", "header") and not path:
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def _field(error: Any) -> str:
    """Where an error is; a NUL character deep inside a field's value adds its path there."""
    where = _location(error.get("loc", ()))
    inner = (error.get("ctx") or {}).get("path") if error.get("type") == NUL_ERROR else None
    if inner:
        where = where + inner if inner.startswith("[") else f"{where}.{inner}"
    return where


_FIELD_PREFIX = re.compile(r"([A-Za-z_][\w.\[\]-]*): (.+)", re.DOTALL)


def errors_of(exc: TidingsError) -> list[dict[str, Any]]:
    """The `errors` list of a domain error. Every 422 carries one: a service that raised only
    a detail ("field: message", as they are written) gets its field read from the detail."""
    if exc.errors or exc.status != 422:
        return exc.errors
    match = _FIELD_PREFIX.fullmatch(exc.detail)
    if match is None:
        return [{"field": "body", "message": exc.detail}]
    return [{"field": match.group(1), "message": match.group(2)}]


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(TidingsError)
    async def _domain(_: Request, exc: TidingsError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, errors=errors_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(err), "message": err.get("msg", "invalid")} for err in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem(422, "Validation failed", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {401: "Unauthorized", 404: "Not found", 405: "Method not allowed"}.get(
            exc.status_code, "Error"
        )
        response = problem(exc.status_code, title, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        return problem(409, "Conflict", "the change conflicts with existing data")

    @app.exception_handler(OperationalError)
    async def _busy(request: Request, exc: OperationalError) -> JSONResponse:
        database: Database = request.app.state.database
        dialect = database.dialect
        if budget.deadline() is not None and dialect.is_cancelled(exc):
            return await _domain(request, budget.exceeded())
        if dialect.is_expression_too_large(exc):
            return problem(
                422,
                "Validation failed",
                f"condition: {EXPRESSION_TOO_LARGE}",
                errors=[{"field": "condition", "message": EXPRESSION_TOO_LARGE}],
            )
        log.warning("database unavailable: %s", exc)
        return problem(503, "Service unavailable", "the database is busy; retry shortly")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return problem(500, "Internal error", "an unexpected error occurred; it has been logged")
