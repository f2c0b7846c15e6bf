"""Which contacts a list page or a bulk action means: search, tag, list, status, segment.

The same fields come from the list's query string and, as hidden inputs, from the bulk form,
so "every matching contact" in a bulk action is exactly the list the user was looking at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Select
from sqlalchemy.orm import Session

from tidings.contacts import repository, search
from tidings.contacts.models import Contact
from tidings.contacts.policy import ContactStatus
from tidings.errors import TidingsError
from tidings.segments import service as segments
from tidings.web.templating import field_errors

FILTER_KEYS = ("q", "tag", "list", "status", "segment", "condition")


@dataclass(slots=True)
class ContactFilter:
    q: str = ""
    tag: str = ""
    list_id: int | None = None
    status: str = ""
    segment_id: int | None = None
    condition: str = ""  # an ad-hoc condition as JSON text
    errors: dict[str, str] = field(default_factory=dict)

    def params(self) -> dict[str, str]:
        """The filter as query parameters (links to other pages, hidden bulk inputs)."""
        values = {
            "q": self.q,
            "tag": self.tag,
            "list": "" if self.list_id is None else str(self.list_id),
            "status": self.status,
            "segment": "" if self.segment_id is None else str(self.segment_id),
            "condition": self.condition,
        }
        return {k: v for k, v in values.items() if v}

    def query(self, **more: Any) -> str:
        return urlencode({**self.params(), **{k: v for k, v in more.items() if v is not None}})


def _id(raw: str, name: str, errors: dict[str, str]) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    if raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return int(raw)
    errors[name] = "must be an id"
    return None


def read_filter(values: Mapping[str, Any]) -> ContactFilter:
    def text(name: str, limit: int = 200) -> str:
        value = values.get(name)
        return value.strip()[:limit] if isinstance(value, str) else ""

    errors: dict[str, str] = {}
    status = text("status")
    if status and status not in {s.value for s in ContactStatus}:
        errors["status"] = f"unknown status {status!r}"
        status = ""
    return ContactFilter(
        q=text("q"),
        tag=text("tag"),
        list_id=_id(text("list"), "list", errors),
        status=status,
        segment_id=_id(text("segment"), "segment", errors),
        condition=text("condition", 20_000),
        errors=errors,
    )


def matching(session: Session, wanted: ContactFilter, now: datetime) -> Select[Any]:
    """SELECT of the matching contacts (errors of the segment parts go into wanted.errors)."""
    query = repository.filtered_contacts(
        tag=wanted.tag or None, list_id=wanted.list_id, status=wanted.status or None
    )
    if wanted.q:
        query = query.where(search.containing(session, wanted.q))
    if wanted.segment_id is not None:
        try:
            condition = segments.get_segment(session, wanted.segment_id).condition
            query = query.where(segments.compile_checked(session, condition, now))
        except TidingsError as exc:
            wanted.errors["segment"] = exc.detail
    if wanted.condition:
        try:
            condition = segments.resolve(session, wanted.condition)
            query = query.where(segments.compile_checked(session, condition, now))
        except TidingsError as exc:
            wanted.errors["condition"] = next(iter(field_errors(exc, "condition").values()))
    return query


def matching_ids(session: Session, wanted: ContactFilter, now: datetime) -> Select[Any]:
    """The same contacts as a SELECT of ids, for the set-based write API."""
    return matching(session, wanted, now).with_only_columns(Contact.id)
