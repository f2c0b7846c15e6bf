"""List management by segment (SPEC S2): add a segment's contacts to a list, or remove them.

Both are set-based, through the contacts write API given the segment as a SELECT of ids: one
statement per kind of change however many contacts match, with a `list_subscribed` /
`list_unsubscribed` activity row per contact that changed. Contacts who left the list before
are not put back (C3): only an explicit resubscribe does that. Pending memberships (double
opt-in not confirmed) are left to the confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from tidings.contacts import service as contacts
from tidings.contacts.models import Contact
from tidings.segments import service


@dataclass(frozen=True, slots=True)
class ListChange:
    list_id: int
    changed: int


def add_segment_to_list(
    session: Session, list_id: int, where: ColumnElement[bool], *, now: datetime, cause: str
) -> ListChange:
    """Subscribe every matching contact that has never been on the list."""
    return _change(session, list_id, where, "add", now=now, cause=cause)


def remove_segment_from_list(
    session: Session, list_id: int, where: ColumnElement[bool], *, now: datetime, cause: str
) -> ListChange:
    """Unsubscribe every matching contact whose membership is active."""
    return _change(session, list_id, where, "remove", now=now, cause=cause)


def _change(
    session: Session,
    list_id: int,
    where: ColumnElement[bool],
    action: Literal["add", "remove"],
    *,
    now: datetime,
    cause: str,
) -> ListChange:
    members = select(Contact.id).where(where)
    mailing_list = contacts.get_list(session, list_id)
    if action == "add":
        changes = contacts.subscribe(
            session, members, mailing_list, cause=cause, now=now, include_pending=False
        )
    else:
        changes = contacts.unsubscribe(
            session, members, mailing_list, cause=cause, now=now, include_pending=False
        )
    return ListChange(list_id, len(changes.changed))


def change_list_by_segment(
    session: Session,
    list_id: int,
    segment: Any,
    action: Literal["add", "remove"],
    *,
    now: datetime,
    cause: str,
) -> ListChange:
    """Add or remove the contacts of `segment` (a condition, or a saved segment's name or
    JSON text) to or from the list: the API's and the CLI's way in."""
    condition = service.resolve(session, segment) if isinstance(segment, str) else segment
    where = service.compile_checked(session, condition, now)
    return _change(session, list_id, where, action, now=now, cause=cause)
