"""ActiveCampaign's error shapes, for every answer under /api/3.

- 422 `{"errors": [{"title", "detail", "code", "source": {"pointer"}}]}` for bad input and
  duplicates, the pointer naming the field as ActiveCampaign names it (`/data/attributes/email`);
- 404 `{"message": ...}` for an id that does not exist, and for a resource Tidings has no
  counterpart for (with a `detail` saying so);
- 403 `{"message": ...}` for a missing or unknown `Api-Token`.

Every answer is `application/json` (clients read that header unconditionally), never a
problem+json or an HTML page, and never a 500 page without a body.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tidings.errors import Conflict, NotFound, TidingsError

log = logging.getLogger("tidings.activecampaign")

# Tidings' field names in service errors -> ActiveCampaign's attribute names.
AC_NAMES = {
    "first_name": "firstName",
    "last_name": "lastName",
    "stage_id": "stage",
    "pipeline_id": "group",
    "owner_id": "owner",
    "contact_id": "contact",
    "contact_ids": "contacts",
    "deal_id": "relid",
    "assignee_id": "assignee",
    "due_at": "duedate",
    "key": "perstag",
    "label": "title",
    "body": "note",
    "type": "type",
}


def ac_json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type="application/json")


def pointer(field: str) -> str:
    """`stage_id` -> `/data/attributes/stage`; `contact_ids[2]` -> `/data/attributes/contacts/2`;
    a query key (`filters[x]`, `limit`) stays a parameter."""
    if field.startswith(("filters[", "orders[")) or field in ("limit", "offset"):
        return f"/parameters/{field}"
    parts = [p for p in re.split(r"[.\[\]]+", field) if p]
    if parts:
        parts[0] = AC_NAMES.get(parts[0], parts[0])
    return "/data/attributes/" + "/".join(parts)


def error_item(field: str | None, title: str, detail: str, code: str) -> dict[str, Any]:
    item: dict[str, Any] = {"title": title, "detail": detail, "code": code}
    item["source"] = {"pointer": pointer(field) if field else "/data"}
    return item


def unprocessable(errors: list[dict[str, Any]]) -> JSONResponse:
    return ac_json({"errors": errors}, 422)


def not_found(message: str, **extra: Any) -> JSONResponse:
    return ac_json({"message": message, **extra}, 404)


def _domain(exc: TidingsError) -> JSONResponse:
    if isinstance(exc, NotFound):
        return not_found(_no_result(exc.detail))
    code = "duplicate" if isinstance(exc, Conflict) else "field_invalid"
    if exc.errors:
        items = [
            error_item(e.get("field"), _sentence(e.get("message", exc.detail)), exc.detail, code)
            for e in exc.errors
        ]
    else:
        field, _, message = exc.detail.partition(": ")
        known = bool(message) and re.fullmatch(r"[A-Za-z_][\w.\[\]]*", field) is not None
        items = [error_item(field if known else None, _sentence(exc.detail), exc.detail, code)]
    return unprocessable(items)


# "contact 7 does not exist" -> ActiveCampaign's "No Result found for Subscriber with id 7".
AC_OBJECTS = {
    "contact": "Subscriber",
    "list": "List",
    "deal": "Deal",
    "task": "DealTask",
    "note": "Note",
    "user": "User",
    "pipeline": "DealGroup",
    "automation": "Automation",
    "stage": "DealStage",
    "tag": "Tag",
}


def _no_result(detail: str) -> str:
    found = re.fullmatch(r"(\w+) (\d+) does not exist", detail.strip())
    if found is None:
        return detail if detail.startswith("No Result") else f"No Result found: {detail}"
    what = AC_OBJECTS.get(found[1].lower(), found[1].capitalize())
    return f"No Result found for {what} with id {found[2]}"


def _sentence(text: str) -> str:
    text = text.strip() or "Invalid value"
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _location(loc: Any) -> str:
    """A pydantic location under the envelope key: ("body", "contact", "email") -> "email"."""
    parts = list(loc)
    if parts and parts[0] in ("query", "path", "header"):
        return ".".join(str(p) for p in parts[1:]) or "body"
    if parts and parts[0] == "body":
        parts = parts[1:]
    if len(parts) > 1:
        parts = parts[1:]  # the envelope ("contact": {...})
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TidingsError)
    async def _tidings(_: Request, exc: TidingsError) -> JSONResponse:
        return _domain(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        items = []
        for err in exc.errors():
            field = _location(err.get("loc", ()))
            message = str(err.get("msg", "invalid"))
            items.append(
                error_item(
                    field or None, _sentence(message), f"{field}: {message}", "field_invalid"
                )
            )
        return unprocessable(items or [error_item(None, "Invalid request.", "", "invalid")])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return not_found("No Result found")
        return ac_json({"message": str(exc.detail)}, exc.status_code)

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        return unprocessable(
            [error_item(None, "The change conflicts with existing data.", "", "duplicate")]
        )

    @app.exception_handler(OperationalError)
    async def _busy(_: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return ac_json({"message": "The database is busy; retry shortly."}, 503)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return ac_json({"message": "An unexpected error occurred; it has been logged."}, 500)
