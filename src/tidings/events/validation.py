"""Checking one incoming event: hand-written (not pydantic) because it runs a million times."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tidings.inputs import NUL, NUL_MESSAGE, nul_error

EMAIL_SENT = "email_sent"
EMAIL_OPENED = "email_opened"
LINK_CLICKED = "link_clicked"
PURCHASE = "purchase"
SITE_VISIT = "site_visit"
FORM_SUBMITTED = "form_submitted"
BUILTIN_TYPES = frozenset(
    {EMAIL_SENT, EMAIL_OPENED, LINK_CLICKED, PURCHASE, SITE_VISIT, FORM_SUBMITTED}
)
CUSTOM_PREFIX = "custom:"
CUSTOM_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,56}")

# Events may arrive late (imports of history) but not from the future: clocks drift a little.
MAX_FUTURE = timedelta(hours=24)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
MAX_DATA_BYTES = 65_536
MAX_TEXT = 2_048
MAX_AMOUNT = 1e12

KEYS = frozenset(
    {
        "type",
        "name",
        "contact_id",
        "email",
        "occurred_at",
        "event_id",
        "message_id",
        "url",
        "amount",
        "currency",
        "order_id",
        "form",
        "properties",
        "machine",
    }
)


class EventError(ValueError):
    """Why one event was rejected (the message names the key)."""


@dataclass(slots=True)
class BadLine:
    """A line of input that was not even a JSON object; rejected with this reason."""

    reason: str


@dataclass(slots=True)
class CheckedEvent:
    type: str
    contact_id: int | None
    email: str | None
    occurred_at: datetime
    event_id: str | None
    machine: bool
    data: dict[str, Any]
    amount_minor: int = 0


def _text(raw: dict[str, Any], key: str, *, required: bool = False, limit: int = 200) -> Any:
    value = raw.get(key)
    if value is None:
        if required:
            raise EventError(f"{key}: required")
        return None
    if type(value) is not str or not value.strip():
        raise EventError(f"{key}: must be non-empty text")
    if len(value) > limit:
        raise EventError(f"{key}: longer than {limit} characters")
    if NUL in value:
        raise EventError(f"{key}: {NUL_MESSAGE}")
    return value


def _timestamp(value: Any, now: datetime, latest: datetime) -> datetime:
    if value is None:
        return now
    if type(value) is not str:
        raise EventError("occurred_at: must be an ISO 8601 timestamp")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise EventError(f"occurred_at: {value!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise EventError("occurred_at: needs a timezone (e.g. 2026-03-01T12:00:00Z)")
    if moment > latest:
        raise EventError("occurred_at: more than 24 hours in the future")
    if moment < EARLIEST:
        raise EventError("occurred_at: before 1970")
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def _event_type(raw: dict[str, Any]) -> str:
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise EventError("type: required")
    if kind in BUILTIN_TYPES:
        if "name" in raw:
            raise EventError("name: only custom events have a name")
        return kind
    if kind == "custom":
        name = raw.get("name")
        if not isinstance(name, str) or not CUSTOM_NAME.fullmatch(name):
            raise EventError("name: custom events need a name of letters, digits, _ . -")
        return CUSTOM_PREFIX + name
    if kind.startswith(CUSTOM_PREFIX) and CUSTOM_NAME.fullmatch(kind[len(CUSTOM_PREFIX) :]):
        return kind
    raise EventError(
        f"type: unknown event type {kind!r}; expected one of "
        f"{', '.join(sorted(BUILTIN_TYPES))}, or custom (with a name)"
    )


def check_event(raw: Any, now: datetime, latest: datetime | None = None) -> CheckedEvent:
    """Validate one event object; raises EventError naming the key.

    `latest` (now + 24 h) may be passed precomputed: this runs once per event."""
    if type(raw) is not dict:
        if isinstance(raw, BadLine):
            raise EventError(raw.reason)
        raise EventError("event: must be a JSON object")
    for key in raw:
        if key not in KEYS:
            raise EventError(f"{key}: unknown key")
    kind = raw.get("type")
    if type(kind) is not str or kind not in BUILTIN_TYPES or "name" in raw:
        kind = _event_type(raw)
    contact_id = raw.get("contact_id")
    email = raw.get("email")
    if contact_id is not None:
        if type(contact_id) is not int or not 0 < contact_id < 2**63:
            raise EventError("contact_id: must be a positive integer")
    elif email is not None:
        if not isinstance(email, str):
            raise EventError("email: must be text")
        if NUL in email:
            raise EventError(f"email: {NUL_MESSAGE}")
    else:
        raise EventError("contact_id or email: required")
    machine = raw.get("machine", False)
    if machine is not False and machine is not True:
        raise EventError("machine: must be true or false")
    data: dict[str, Any] = {}
    message_id = raw.get("message_id")
    if message_id is not None:
        if (
            type(message_id) is not str
            or not 0 < len(message_id) <= 200
            or message_id.isspace()
            or NUL in message_id
        ):
            _text(raw, "message_id")  # raises with the reason
        data["message_id"] = message_id
    amount_minor = 0
    if kind in (LINK_CLICKED, SITE_VISIT):
        data["url"] = _text(raw, "url", required=True, limit=MAX_TEXT)
    elif "url" in raw:
        data["url"] = _text(raw, "url", limit=MAX_TEXT)
    if kind == PURCHASE:
        amount = raw.get("amount")
        if (
            isinstance(amount, bool)
            or not isinstance(amount, int | float)
            or not math.isfinite(amount)
            or not 0 <= amount <= MAX_AMOUNT
        ):
            raise EventError("amount: required, a number between 0 and 1e12")
        amount_minor = round(amount * 100)
        data["amount"] = amount
        data["amount_minor"] = amount_minor
        currency = _text(raw, "currency", limit=3)
        if currency is not None:
            if not currency.isalpha() or len(currency) != 3:
                raise EventError("currency: must be a 3-letter ISO 4217 code")
            data["currency"] = currency.upper()
        order_id = _text(raw, "order_id")
        if order_id is not None:
            data["order_id"] = order_id
    elif "amount" in raw or "order_id" in raw or "currency" in raw:
        raise EventError("amount: only purchase events have an amount, currency or order_id")
    if kind == FORM_SUBMITTED:
        data["form"] = _text(raw, "form", required=True)
    elif "form" in raw:
        raise EventError("form: only form_submitted events name a form")
    properties = raw.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            raise EventError("properties: must be an object")
        if properties:
            try:
                encoded = orjson.dumps(properties)
            except TypeError as exc:  # e.g. an int beyond 64 bits from a Python caller
                raise EventError(f"properties: {exc}") from None
            if len(encoded) > MAX_DATA_BYTES:
                raise EventError(f"properties: {len(encoded)} bytes, more than {MAX_DATA_BYTES}")
            # JSON writes NUL as \u0000: only then is the walk worth it.
            if b"\\u0000" in encoded and (problem := nul_error(properties, "properties")):
                raise EventError(problem)
            data["properties"] = properties
    event_id = _text(raw, "event_id")
    return CheckedEvent(
        type=kind,
        contact_id=contact_id,
        email=email,
        occurred_at=_timestamp(raw.get("occurred_at"), now, latest or now + MAX_FUTURE),
        event_id=event_id,
        machine=machine,
        data=data,
        amount_minor=amount_minor,
    )
