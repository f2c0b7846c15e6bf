"""Tags on contacts and list memberships: the set-based write API and its history rows.

Each function takes the contacts as a list of ids or as a SELECT of ids (see
`repository.ContactIds`), changes them in a few statements however many they are, and writes
the `tag_added`, `tag_removed`, `list_subscribed` and `list_unsubscribed` rows of exactly the
contacts that changed (read back with RETURNING, so a concurrent transaction making the same
change is no conflict and no double row) in the same transaction. Nothing here commits, and
nothing outside `tidings.contacts` writes these tables (tests/test_ownership.py checks it).

The engine's tag steps are its hottest path: `add_tags` is one
`INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING` per tag and one insert of the
activity rows, whatever the number of contacts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import BigInteger, Select, Table, delete, literal, select, true, update
from sqlalchemy.orm import Session

from tidings.activities.service import ActivityType, record_tuples
from tidings.contacts import repository
from tidings.contacts.models import Contact, ContactTag, ListMembership, MailingList, Tag
from tidings.contacts.repository import ContactIds
from tidings.contacts.writes import Changes, Row, missing
from tidings.db.bulk import dialect_insert
from tidings.db.types import UTCDateTime

CONTACT_TAGS = cast(Table, ContactTag.__table__)
MEMBERSHIPS = cast(Table, ListMembership.__table__)
MEMBERSHIP_ACTIVE = "active"
MEMBERSHIP_UNSUBSCRIBED = "unsubscribed"
# Asked to join a double-opt-in list, not confirmed yet (no activity until confirmed).
MEMBERSHIP_PENDING = "pending"
TAG_ADDED = ActivityType.TAG_ADDED.value
TAG_REMOVED = ActivityType.TAG_REMOVED.value
LIST_SUBSCRIBED = ActivityType.LIST_SUBSCRIBED.value
LIST_UNSUBSCRIBED = ActivityType.LIST_UNSUBSCRIBED.value


class NamedList(Protocol):
    """A list as these functions need it (a MailingList, or ListRef when only id and name are
    at hand): its name goes into the activity rows."""

    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ListRef:
    id: int
    name: str


# ---- tags and lists by name ---------------------------------------------------------------


def _ensure_named(
    session: Session, model: type[Tag] | type[MailingList], names: Sequence[str], **defaults: Any
) -> dict[str, int]:
    """Ids of the named rows of `model`, creating those that do not exist yet."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    query = select(model.name, model.id)
    ids = {name: id_ for name, id_ in session.execute(query.where(model.name.in_(wanted)))}
    absent = [name for name in wanted if name not in ids]
    if absent:
        # Two transactions may create the same new name at once: the later one waits for the
        # earlier and then skips its row instead of failing on the unique name.
        statement = dialect_insert(session, model).on_conflict_do_nothing(index_elements=["name"])
        session.execute(statement, [{"name": name, **defaults} for name in absent])
        found = session.execute(query.where(model.name.in_(absent)))
        ids.update({name: id_ for name, id_ in found})
    return ids


def ensure_tags(session: Session, names: Sequence[str], now: datetime) -> dict[str, int]:
    """Ids of the named tags, creating those that do not exist yet."""
    return _ensure_named(session, Tag, names, created_at=now)


def ensure_lists(session: Session, names: Sequence[str], now: datetime) -> dict[str, int]:
    """Ids of the named lists, creating those that do not exist yet."""
    return _ensure_named(session, MailingList, names, created_at=now, double_opt_in=False)


# ---- tags ---------------------------------------------------------------------------------


def add_tags(
    session: Session,
    contacts: ContactIds,
    tags: Mapping[str, int],
    *,
    cause: str,
    now: datetime,
) -> Changes:
    """Give these contacts these tags (name -> id, as `ensure_tags` returns them), in the
    mapping's order; one `tag_added` row per tag a contact did not have. The ids are not
    checked against contacts: contact_tags has no foreign keys, and reads join contacts."""
    source = repository.ids_source(session, contacts, BigInteger())
    rows: list[Row] = []
    changed: list[list[int]] = []
    for name, tag_id in tags.items():
        statement = (
            dialect_insert(session, CONTACT_TAGS)  # the table: no ORM bookkeeping
            .from_select(
                ["contact_id", "tag_id", "created_at"],
                # SQLite needs a WHERE to parse INSERT ... SELECT ... ON CONFLICT.
                select(source, literal(tag_id), literal(now, UTCDateTime())).where(true()),
            )
            .on_conflict_do_nothing()
            .returning(CONTACT_TAGS.c.contact_id)
        )
        added = sorted(session.scalars(statement))
        data = {"tag": name, "tag_id": tag_id}  # one object: encoded once for all its rows
        rows.extend((cid, TAG_ADDED, cause, now, data) for cid in added)
        changed.append(added)
    record_tuples(session, rows)
    return Changes(changed=_union(changed))


def remove_tags(
    session: Session,
    contacts: ContactIds,
    tags: Mapping[str, int],
    *,
    cause: str,
    now: datetime,
) -> Changes:
    """Take these tags (name -> id) off these contacts; one `tag_removed` row per tag a
    contact had."""
    column = CONTACT_TAGS.c.contact_id
    condition = repository.ids_condition(session, column, contacts)
    rows: list[Row] = []
    changed: list[list[int]] = []
    for name, tag_id in tags.items():
        statement = (
            delete(CONTACT_TAGS).where(CONTACT_TAGS.c.tag_id == tag_id, condition).returning(column)
        )
        removed = sorted(session.scalars(statement))
        data = {"tag": name, "tag_id": tag_id}
        rows.extend((cid, TAG_REMOVED, cause, now, data) for cid in removed)
        changed.append(removed)
    record_tuples(session, rows)
    return Changes(changed=_union(changed))


def _union(lists: list[list[int]]) -> list[int]:
    if len(lists) == 1:
        return lists[0]
    return sorted({cid for ids in lists for cid in ids})


def remove_tag_everywhere(session: Session, tag_id: int) -> None:
    """Take a tag off every contact, without history rows: the tag itself is being deleted."""
    session.execute(delete(CONTACT_TAGS).where(CONTACT_TAGS.c.tag_id == tag_id))


# ---- lists --------------------------------------------------------------------------------


def rejoin_refused(list_name: str) -> str:
    return f"contact unsubscribed from list {list_name!r}; rejoining needs force_resubscribe=true"


def subscribe(
    session: Session,
    contacts: ContactIds,
    mailing_list: NamedList,
    *,
    cause: str,
    now: datetime,
    force_resubscribe: bool = False,
    include_pending: bool = True,
) -> Changes:
    """Make these contacts active members of the list; one `list_subscribed` row each that
    joins.

    Someone who left the list only rejoins by an explicit resubscribe (SPEC C3): without
    `force_resubscribe` they are refused, with the reason. A pending membership (double opt-in
    not confirmed) becomes active unless `include_pending` is False (lists by segment leave it
    to the confirmation).
    """
    list_id = mailing_list.id
    m = MEMBERSHIPS.c
    here = (m.list_id == list_id, repository.ids_condition(session, m.contact_id, contacts))
    result = Changes()
    if not force_resubscribe:
        left = select(m.contact_id).where(*here, m.status == MEMBERSHIP_UNSUBSCRIBED)
        reason = rejoin_refused(mailing_list.name)
        result.refused.update((cid, reason) for cid in session.scalars(left))
    again = [MEMBERSHIP_PENDING] if include_pending else []
    if force_resubscribe:
        again.append(MEMBERSHIP_UNSUBSCRIBED)
    joined: list[int] = []
    if again:
        statement = (
            update(MEMBERSHIPS)
            .where(*here, m.status.in_(again))
            .values(status=MEMBERSHIP_ACTIVE, updated_at=now)
            .returning(m.contact_id)
        )
        joined.extend(session.scalars(statement))
    # Every contact not on the list yet; the ids come from contacts (the foreign key).
    newcomers = select(
        Contact.id,
        literal(list_id),
        literal(MEMBERSHIP_ACTIVE),
        literal(now, UTCDateTime()),
        literal(now, UTCDateTime()),
    ).where(repository.ids_condition(session, Contact.id, contacts))
    statement = (
        dialect_insert(session, MEMBERSHIPS)
        .from_select(["contact_id", "list_id", "status", "created_at", "updated_at"], newcomers)
        .on_conflict_do_nothing()
        .returning(m.contact_id)
    )
    joined.extend(session.scalars(statement))
    result.changed = sorted(joined)
    _name_missing(session, contacts, result)
    _record_lists(session, result.changed, LIST_SUBSCRIBED, mailing_list, cause, now)
    return result


def unsubscribe(
    session: Session,
    contacts: ContactIds,
    mailing_list: NamedList,
    *,
    cause: str,
    now: datetime,
    include_pending: bool = True,
) -> Changes:
    """End these contacts' memberships of the list (they stay, as `unsubscribed`); one
    `list_unsubscribed` row each that was on it. A pending membership ends too unless
    `include_pending` is False."""
    m = MEMBERSHIPS.c
    leaving = [MEMBERSHIP_ACTIVE, MEMBERSHIP_PENDING] if include_pending else [MEMBERSHIP_ACTIVE]
    statement = (
        update(MEMBERSHIPS)
        .where(
            m.list_id == mailing_list.id,
            repository.ids_condition(session, m.contact_id, contacts),
            m.status.in_(leaving),
        )
        .values(status=MEMBERSHIP_UNSUBSCRIBED, updated_at=now)
        .returning(m.contact_id)
    )
    result = Changes(changed=sorted(session.scalars(statement)))
    _name_missing(session, contacts, result)
    _record_lists(session, result.changed, LIST_UNSUBSCRIBED, mailing_list, cause, now)
    return result


def _name_missing(session: Session, contacts: ContactIds, result: Changes) -> None:
    """Refuse the given ids that have no contact (not looked up when every id is accounted
    for already; a SELECT has no missing ones)."""
    if isinstance(contacts, Select):
        return
    ids = sorted(set(contacts))
    if len(result.changed) + len(result.refused) < len(ids):
        result.refused.update(missing(ids, repository.existing_ids(session, ids)))


def _record_lists(
    session: Session,
    ids: list[int],
    kind: str,
    mailing_list: NamedList,
    cause: str,
    now: datetime,
) -> None:
    data = {"list": mailing_list.name, "list_id": mailing_list.id}
    record_tuples(session, [(cid, kind, cause, now, data) for cid in ids])


def set_pending(session: Session, contact_id: int, list_id: int, *, now: datetime) -> None:
    """Put a contact on a double-opt-in list as `pending` (created, or switched to it). No
    activity row: the confirmation's `list_subscribed` is the fact."""
    statement = dialect_insert(session, MEMBERSHIPS).values(
        contact_id=contact_id,
        list_id=list_id,
        status=MEMBERSHIP_PENDING,
        created_at=now,
        updated_at=now,
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["contact_id", "list_id"],
            set_={"status": MEMBERSHIP_PENDING, "updated_at": now},
        )
    )
