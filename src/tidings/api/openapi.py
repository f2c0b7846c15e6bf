"""The OpenAPI document says what clients meet: the API key (a bearer token) on every /api
route, and the problem+json answers (RFC 9457) each route may give besides its success.

They are added to the document FastAPI builds rather than declared on each route: the rules
are the same everywhere (tidings.api.problems turns every error into a problem), so a new
route is described without anyone remembering to."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from tidings.api.problems import PROBLEM_JSON

API_KEY_SCHEME = "apiKey"
API_PREFIX = "/api/"
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "An error (RFC 9457 problem details).",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Every 422 lists the invalid fields here.",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                "required": ["field", "message"],
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}

_API_ANSWERS = {
    "400": "The body could not be read (not JSON, or not UTF-8).",
    "401": "No valid API key (Authorization: Bearer <key>).",
    "404": "Something the request names (in its path or body) does not exist.",
    "409": "The change conflicts with existing data.",
    "422": "Invalid input: `errors` names each field.",
    "503": "The database is busy, or the request ran out of time; retry shortly.",
}
# The pages people open from their mail (unsubscribe, preferences, confirm) answer in HTML.
_PAGE_ANSWERS = {
    "400": "The form could not be read.",
    "403": "A form not sent from our page.",
    "404": "The link is not valid.",
    "409": "The link was used already.",
    "422": "The link or the form is not valid.",
}


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (and /openapi.json) the described document, built once."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def describe(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = {
        API_KEY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: `tidings apikey create NAME` prints one.",
        }
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if path.startswith(API_PREFIX):
                operation["security"] = [{API_KEY_SCHEME: []}]
                _answers(operation, _codes(path, method, operation), _API_ANSWERS, PROBLEM_JSON)
            elif operation.get("responses", {}).get("200", {}).get("content", {}).get("text/html"):
                codes = {"404", "409", "422"} | ({"403"} if method in WRITE_METHODS else set())
                _answers(operation, codes, _PAGE_ANSWERS, "text/html")
                # Malformed input is refused before the page is made: a problem.
                if "requestBody" in operation:
                    _answers(operation, {"400"}, _PAGE_ANSWERS, PROBLEM_JSON)
                operation["responses"]["422"]["content"][PROBLEM_JSON] = {"schema": _PROBLEM_REF}
    _drop_unused_validation_schemas(schema)
    return schema


def _codes(path: str, method: str, operation: dict[str, Any]) -> set[str]:
    codes = {"401", "422", "503"}
    if "requestBody" in operation:
        codes.add("400")
    if "{" in path or operation.get("parameters") or "requestBody" in operation:
        codes.add("404")
    if method in WRITE_METHODS:
        codes.add("409")
    return codes


def _answers(
    operation: dict[str, Any], codes: set[str], descriptions: dict[str, str], media_type: str
) -> None:
    schema = _PROBLEM_REF if media_type == PROBLEM_JSON else {"type": "string"}
    responses = operation.setdefault("responses", {})
    for code in sorted(codes):
        responses[code] = {
            "description": descriptions[code],
            "content": {media_type: {"schema": schema}},
        }


def _drop_unused_validation_schemas(schema: dict[str, Any]) -> None:
    """FastAPI's own 422 shape is never sent (tidings.api.problems answers instead)."""
    text = json.dumps(schema.get("paths", {}))
    schemas = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{name}"' not in text:
            schemas.pop(name, None)
