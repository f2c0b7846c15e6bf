"""List management by segment (SPEC S2): add a segment's contacts to a list, or remove them.

Both are set-based: one INSERT ... SELECT of the activity rows and one of the memberships (or
one UPDATE), however many contacts match. Contacts who left the list before are not put back
(C3): only an explicit resubscribe does that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.activities.service import ActivityType, mark_activities_written
from tidings.contacts.models import Contact, ListMembership, MailingList
from tidings.contacts.service import MEMBERSHIP_ACTIVE, MEMBERSHIP_UNSUBSCRIBED, get_list
from tidings.db.types import JSONType
from tidings.segments import service


@dataclass(frozen=True, slots=True)
class ListChange:
    list_id: int
    changed: int


def _record_changes(
    session: Session,
    mailing_list: MailingList,
    contacts: Any,
    type_: ActivityType,
    cause: str,
    now: datetime,
) -> int:
    """One activity row for each contact id selected by `contacts`, in one statement; returns
    how many contacts that is (nothing is written for none)."""
    count = session.scalar(select(func.count()).select_from(contacts)) or 0
    if not count:
        return 0
    data = {"list": mailing_list.name, "list_id": mailing_list.id}
    rows = select(
        contacts.c.id,
        literal(type_.value),
        literal(cause),
        literal(data, JSONType),
        literal(now, Activity.occurred_at.type),
    )
    session.execute(
        insert(Activity).from_select(["contact_id", "type", "cause", "data", "occurred_at"], rows)
    )
    mark_activities_written(session)
    return count


def add_segment_to_list(
    session: Session, list_id: int, where: ColumnElement[bool], *, now: datetime, cause: str
) -> ListChange:
    """Subscribe every matching contact that has never been on the list."""
    mailing_list = get_list(session, list_id)
    never_member = ~exists().where(
        ListMembership.contact_id == Contact.id, ListMembership.list_id == list_id
    )
    joining = select(Contact.id).where(where, never_member).subquery()
    count = _record_changes(
        session, mailing_list, joining, ActivityType.LIST_SUBSCRIBED, cause, now
    )
    if not count:
        return ListChange(list_id, 0)
    session.execute(
        insert(ListMembership).from_select(
            ["contact_id", "list_id", "status", "created_at", "updated_at"],
            select(
                joining.c.id,
                literal(list_id),
                literal(MEMBERSHIP_ACTIVE),
                literal(now, ListMembership.created_at.type),
                literal(now, ListMembership.updated_at.type),
            ),
        )
    )
    return ListChange(list_id, count)


def remove_segment_from_list(
    session: Session, list_id: int, where: ColumnElement[bool], *, now: datetime, cause: str
) -> ListChange:
    """Unsubscribe every matching contact whose membership is active."""
    mailing_list = get_list(session, list_id)
    active_member = exists().where(
        and_(
            ListMembership.contact_id == Contact.id,
            ListMembership.list_id == list_id,
            ListMembership.status == MEMBERSHIP_ACTIVE,
        )
    )
    leaving = select(Contact.id).where(where, active_member).subquery()
    count = _record_changes(
        session, mailing_list, leaving, ActivityType.LIST_UNSUBSCRIBED, cause, now
    )
    if not count:
        return ListChange(list_id, 0)
    session.execute(
        update(ListMembership)
        .where(
            ListMembership.list_id == list_id, ListMembership.contact_id.in_(select(leaving.c.id))
        )
        .values(status=MEMBERSHIP_UNSUBSCRIBED, updated_at=now)
    )
    return ListChange(list_id, count)


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
    apply = add_segment_to_list if action == "add" else remove_segment_from_list
    return apply(session, list_id, where, now=now, cause=cause)
