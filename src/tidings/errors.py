"""Domain errors. The API turns them into application/problem+json (RFC 9457)."""

from __future__ import annotations

from typing import Any


class TidingsError(Exception):
    """Base of all expected, user-facing errors."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class ValidationFailed(TidingsError):
    status = 422
    title = "Validation failed"


class NotFound(TidingsError):
    status = 404
    title = "Not found"


class Conflict(TidingsError):
    status = 409
    title = "Conflict"


def field_error(field: str, message: str) -> ValidationFailed:
    """A 422 about one field: detail "field: message", and the field in `errors`."""
    return ValidationFailed(f"{field}: {message}", errors=[{"field": field, "message": message}])
