"""Typed custom fields: the types, and coercing a raw value (JSON or CSV text) to its type."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from tidings.errors import ValidationFailed
from tidings.text import control_character


class FieldType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    BOOLEAN = "boolean"
    SINGLE_CHOICE = "single_choice"
    MULTI_CHOICE = "multi_choice"


# Standard contact columns: a custom field may not take one of these keys.
STANDARD_FIELDS = frozenset(
    {"id", "email", "first_name", "last_name", "phone", "status", "score", "tags", "lists"}
)
FIELD_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_TEXT_LENGTH = 10_000
_TRUE = {"true", "yes", "1", "y", "on"}
_FALSE = {"false", "no", "0", "n", "off"}


class FieldValueError(ValidationFailed):
    pass


@dataclass(frozen=True, slots=True)
class FieldDef:
    key: str
    type: FieldType
    options: tuple[str, ...] = ()


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise FieldValueError("expected a number, got a boolean")
    if isinstance(value, int | float):
        number: int | float = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise FieldValueError(f"expected a number, got {value!r}") from None
    else:
        raise FieldValueError(f"expected a number, got {type(value).__name__}")
    if isinstance(number, float) and not math.isfinite(number):
        raise FieldValueError("expected a finite number")
    return number


def _date(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()[:10]
    if not isinstance(value, str):
        raise FieldValueError(f"expected a date (YYYY-MM-DD), got {type(value).__name__}")
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise FieldValueError(f"expected a date (YYYY-MM-DD), got {value!r}") from None


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FieldValueError(f"expected a boolean (true/false), got {value!r}")


def _choice(value: Any, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise FieldValueError(f"{value!r} is not one of {list(options)}")
    return value


def _choices(value: Any, options: tuple[str, ...]) -> list[str]:
    if isinstance(value, str):
        # CSV cells hold several choices separated by '|' (or ';').
        parts = [p.strip() for p in re.split(r"[|;]", value) if p.strip()]
    elif isinstance(value, list):
        parts = value
    else:
        raise FieldValueError(f"expected a list of choices, got {type(value).__name__}")
    chosen = [_choice(part, options) for part in parts]
    return sorted(set(chosen), key=chosen.index)


def _text(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise FieldValueError(f"expected text, got {type(value).__name__}")
    text = str(value)
    if len(text) > MAX_TEXT_LENGTH:
        raise FieldValueError(f"text longer than {MAX_TEXT_LENGTH} characters")
    problem = control_character(text, multiline=True)
    if problem is not None:
        raise FieldValueError(f"contains {problem}")
    return text


_COERCERS: dict[FieldType, Callable[[Any, tuple[str, ...]], Any]] = {
    FieldType.TEXT: lambda value, _: _text(value),
    FieldType.NUMBER: lambda value, _: _number(value),
    FieldType.DATE: lambda value, _: _date(value),
    FieldType.BOOLEAN: lambda value, _: _boolean(value),
    FieldType.SINGLE_CHOICE: _choice,
    FieldType.MULTI_CHOICE: _choices,
}


def check_options(field_type: FieldType, options: list[str] | None) -> list[str] | None:
    """The options of a field definition: required (and unique) for choice fields only."""
    if field_type in (FieldType.SINGLE_CHOICE, FieldType.MULTI_CHOICE):
        if not options:
            raise ValidationFailed(f"options: a {field_type} field needs at least one option")
        if len(set(options)) != len(options):
            raise ValidationFailed("options: must be unique")
        return options
    if options:
        raise ValidationFailed(f"options: only choice fields have options, not {field_type}")
    return None


def coerce(field: FieldDef, value: Any) -> Any:
    """The stored form of `value` for `field`; None and "" clear the field."""
    if value is None or value == "":
        return None
    return _COERCERS[field.type](value, field.options)


def coerce_all(
    definitions: dict[str, FieldDef], values: dict[str, Any], *, path: str = "fields"
) -> dict[str, Any]:
    """Coerce a dict of custom-field values; errors name every offending field."""
    errors: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    for key, value in values.items():
        definition = definitions.get(key)
        if definition is None:
            errors.append({"field": f"{path}.{key}", "message": f"unknown custom field {key!r}"})
            continue
        try:
            result[key] = coerce(definition, value)
        except FieldValueError as exc:
            errors.append({"field": f"{path}.{key}", "message": exc.detail})
    if errors:
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise FieldValueError(summary, errors=errors)
    return result
