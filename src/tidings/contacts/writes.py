"""The set-based write API for a contact's own columns: status, score, names and custom fields,
the engagement summary, and deleting contacts.

Each function takes the contacts as a list of ids or as a SELECT of ids (see
`repository.ContactIds`), changes them in a few statements however many they are, and writes
their activity rows (`status_changed`, `score_changed`, `field_changed`, `contact_deleted`) in
the same transaction - the one place those rows are made (zulip's `do_*` pattern: the change
and its audit row together). Nothing here commits, and nothing outside `tidings.contacts`
writes these tables (tests/test_ownership.py checks it).

The writes are SQL: ORM objects already loaded in the session are not refreshed (the
single-contact functions of `tidings.contacts.service` keep the object they are given current).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Select, Table, bindparam, delete, func, update
from sqlalchemy.orm import Session

from tidings.activities.service import ActivityType, record_tuples
from tidings.contacts import repository
from tidings.contacts.emails import InvalidEmail, normalize_email
from tidings.contacts.fields import FieldDef, coerce_all
from tidings.contacts.models import Contact, ContactTag
from tidings.contacts.policy import ContactStatus, needs_explicit_resubscribe
from tidings.contacts.repository import ContactIds
from tidings.db.bulk import in_values
from tidings.db.dialect import dialect_of
from tidings.db.types import stored_time
from tidings.errors import Conflict, ValidationFailed

CONTACTS = cast(Table, Contact.__table__)
CONTACT_TAGS = cast(Table, ContactTag.__table__)
PROFILE_ATTRIBUTES = ("first_name", "last_name", "phone")
# The reason a write names for an id that has no contact (a run whose contact was deleted).
NO_CONTACT = "contact no longer exists"
STATUS_CHANGED = ActivityType.STATUS_CHANGED.value
SCORE_CHANGED = ActivityType.SCORE_CHANGED.value
FIELD_CHANGED = ActivityType.FIELD_CHANGED.value
CONTACT_DELETED = ActivityType.CONTACT_DELETED.value

# An activity row in ACTIVITY_COLUMNS order: (contact_id, type, cause, occurred_at, data).
Row = tuple[int, str, str, datetime, dict[str, Any]]


@dataclass(slots=True)
class Changes:
    """What a set-based write did: the contacts it changed (each with its activity rows), and
    those a per-contact rule refused, with the reason (the others were changed all the same)."""

    changed: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)


def missing(contacts: ContactIds, found: Iterable[int]) -> dict[int, str]:
    """The given ids without a contact, each with NO_CONTACT (a SELECT names no missing ones)."""
    if isinstance(contacts, Select):
        return {}
    gone = set(contacts).difference(found)
    return dict.fromkeys(sorted(gone), NO_CONTACT)


def checked_status(status: str) -> str:
    try:
        return ContactStatus(status).value
    except ValueError:
        allowed = ", ".join(s.value for s in ContactStatus)
        raise ValidationFailed(f"status: {status!r} is not one of {allowed}") from None


def status_data(old: str, new: str, reason: str | None, forced: bool) -> dict[str, Any]:
    """The data of a `status_changed` row (the upsert writes the same)."""
    return {"old": old, "new": new, "reason": reason, "forced": forced}


def field_data(name: str, old: Any, new: Any) -> dict[str, Any]:
    """The data of a `field_changed` row (the upsert writes the same)."""
    return {"field": name, "old": old, "new": new}


def resubscribe_refused(old: str, new: str) -> str:
    return (
        f"contact is {old}; moving it to {new} needs an explicit resubscribe "
        "(force_resubscribe=true with a reason)"
    )


# ---- status -------------------------------------------------------------------------------


def set_status(
    session: Session,
    contacts: ContactIds,
    status: str,
    *,
    cause: str,
    now: datetime,
    reason: str | Mapping[int, str] | None = None,
    force_resubscribe: bool = False,
    only_from: Collection[str] | None = None,
) -> Changes:
    """Give these contacts `status` (SPEC C3), one `status_changed` row each that changes.

    Leaving unsubscribed, bounced or complained for a status that receives mail needs
    `force_resubscribe` and a reason (`reason` may name one per contact): a contact without
    them is refused, the others change. `only_from` limits the change to contacts now in one
    of those statuses (a hard bounce does not turn a complaint into a bounce).
    """
    status = checked_status(status)
    found = repository.statuses(session, contacts)
    result = Changes(refused=missing(contacts, (cid for cid, _ in found)))
    by_old: dict[str, list[int]] = {}
    data: dict[int, dict[str, Any]] = {}
    for contact_id, old in found:
        if old == status or (only_from is not None and old not in only_from):
            continue
        why = reason.get(contact_id) if isinstance(reason, Mapping) else reason
        forced = needs_explicit_resubscribe(old, status)
        if forced and not (force_resubscribe and why):
            result.refused[contact_id] = resubscribe_refused(old, status)
            continue
        by_old.setdefault(old, []).append(contact_id)
        data[contact_id] = status_data(old, status, why, forced)
    c = CONTACTS.c
    for old, ids in by_old.items():
        # "status = old" keeps each row's recorded old status true if another transaction
        # changed it meanwhile (that contact is then left as the other transaction set it).
        statement = (
            update(CONTACTS)
            .where(in_values(session, c.id, ids), c.status == old)
            .values(status=status, updated_at=now)
            .returning(c.id)
        )
        result.changed.extend(session.scalars(statement))
    result.changed.sort()
    record_tuples(session, [(cid, STATUS_CHANGED, cause, now, data[cid]) for cid in result.changed])
    return result


# ---- score --------------------------------------------------------------------------------


def adjust_scores(
    session: Session, contacts: ContactIds, by: int, *, cause: str, now: datetime
) -> dict[int, int]:
    """Add `by` to these contacts' lead scores (one relative UPDATE, exact under concurrency);
    one `score_changed` row each. Returns each changed contact's new score."""
    c = CONTACTS.c
    statement = (
        update(CONTACTS)
        .where(repository.ids_condition(session, c.id, contacts))
        .values(score=c.score + by, updated_at=now)
        .returning(c.id, c.score)
    )
    scores = {cid: score for cid, score in session.execute(statement)}
    record_tuples(
        session,
        [
            (cid, SCORE_CHANGED, cause, now, {"old": score - by, "new": score, "by": by})
            for cid, score in scores.items()
        ],
    )
    return scores


# ---- names, phone, custom fields ----------------------------------------------------------


def checked_values(
    session: Session, values: Mapping[str, Any], definitions: dict[str, FieldDef] | None = None
) -> tuple[dict[str, str | None], dict[str, Any]]:
    """(profile attributes, custom-field values) as they are stored; raises FieldValueError
    naming every custom field that does not exist or whose value does not fit its type."""
    profile: dict[str, str | None] = {}
    custom: dict[str, Any] = {}
    for key, value in values.items():
        if key in PROFILE_ATTRIBUTES:
            profile[key] = (value.strip() or None) if isinstance(value, str) else None
        else:
            custom[key] = value
    if custom:
        if definitions is None:
            definitions = repository.field_definitions(session)
        custom = coerce_all(definitions, custom)
    return profile, custom


def set_fields(
    session: Session,
    contacts: ContactIds,
    values: Mapping[str, Any],
    *,
    cause: str,
    now: datetime,
    definitions: dict[str, FieldDef] | None = None,
) -> Changes:
    """Set names, phone (PROFILE_ATTRIBUTES) and custom fields (any other key) of these
    contacts to `values`; None or "" clears one. One `field_changed` row per value that
    changes. A value that does not fit its field's type raises ValidationFailed before
    anything is written."""
    profile, custom = checked_values(session, values, definitions)
    found = repository.profiles(session, contacts)
    result = Changes(refused=missing(contacts, (row.id for row in found)))
    rows: list[Row] = []
    updates: list[dict[str, Any]] = []
    for contact in found:
        changes: dict[str, Any] = {}
        for attribute, value in profile.items():
            old = getattr(contact, attribute)
            if value != old:
                changes[attribute] = value
                rows.append(
                    (contact.id, FIELD_CHANGED, cause, now, field_data(attribute, old, value))
                )
        if custom:
            stored = contact.fields or {}
            merged = dict(stored)
            for key, value in custom.items():
                old = merged.get(key)
                if value != old:
                    rows.append(
                        (contact.id, FIELD_CHANGED, cause, now, field_data(key, old, value))
                    )
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
            if merged != stored:
                changes["fields"] = merged
        if changes:
            updates.append({"id": contact.id, **changes, "updated_at": now})
            result.changed.append(contact.id)
    update_by_id(session, updates)
    record_tuples(session, rows)
    return result


def set_email(session: Session, contact_id: int, email: str, *, cause: str, now: datetime) -> bool:
    """Change one contact's address (addresses are unique: this is never set-wise). Returns
    whether it changed; raises ValidationFailed for an invalid address, Conflict for one that
    another contact has."""
    try:
        normalized = normalize_email(email)
    except InvalidEmail as exc:
        raise ValidationFailed(f"email: {exc.detail}") from None
    c = CONTACTS.c
    old = repository.email_of(session, contact_id)
    if old is None or normalized == old:
        return False
    if repository.ids_by_email(session, [normalized]):
        raise Conflict(f"a contact with email {normalized} already exists")
    session.execute(
        update(CONTACTS).where(c.id == contact_id).values(email=normalized, updated_at=now)
    )
    record_tuples(
        session, [(contact_id, FIELD_CHANGED, cause, now, field_data("email", old, normalized))]
    )
    return True


def update_by_id(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE contacts ... WHERE id = :id for rows of values by id: one executemany per set of
    changed columns."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        shapes.setdefault(tuple(sorted(row)), []).append(row)
    for keys, same in shapes.items():
        statement = (
            update(CONTACTS)
            .where(CONTACTS.c.id == bindparam("b_id"))
            .values({key: bindparam(f"b_{key}") for key in keys if key != "id"})
        )
        session.execute(statement, [{f"b_{key}": value for key, value in r.items()} for r in same])


# ---- deleting -----------------------------------------------------------------------------


def delete_contacts(
    session: Session, contacts: ContactIds, *, cause: str, now: datetime, anonymous: bool = False
) -> list[int]:
    """Delete these contacts (memberships go with them by foreign key; tags, which have none,
    explicitly); one `contact_deleted` row each, which outlives it - without the address when
    `anonymous` (list hygiene, erasure: no personal data is kept). Returns the deleted ids."""
    c = CONTACTS.c
    statement = (
        delete(CONTACTS)
        .where(repository.ids_condition(session, c.id, contacts))
        .returning(c.id, c.email)
    )
    gone = sorted((cid, email) for cid, email in session.execute(statement))
    ids = [cid for cid, _ in gone]
    if ids:
        session.execute(
            delete(CONTACT_TAGS).where(in_values(session, CONTACT_TAGS.c.contact_id, ids))
        )
    record_tuples(
        session,
        [
            (cid, CONTACT_DELETED, cause, now, {} if anonymous else {"email": email})
            for cid, email in gone
        ],
    )
    return ids


# ---- engagement summary -------------------------------------------------------------------


@dataclass(slots=True)
class Engagement:
    """What a batch of events adds to one contact's engagement summary (SPEC E2)."""

    opens: int = 0
    clicks: int = 0
    purchases: int = 0
    visits: int = 0
    amount_minor: int = 0
    last_open: datetime | None = None
    last_click: datetime | None = None
    last_purchase: datetime | None = None
    last_visit: datetime | None = None

    def last_engaged(self) -> datetime | None:
        times = (self.last_open, self.last_click, self.last_purchase, self.last_visit)
        present = [t for t in times if t is not None]
        return max(present) if present else None


SUMMARY_TIMES = ("last_open_at", "last_click_at", "last_purchase_at", "last_visit_at")
SUMMARY_COUNTS = ("open_count", "click_count", "purchase_count", "visit_count")

# SQLite: timestamps are fixed-width text, so "later" is a text comparison; a NULL parameter
# (nothing of that kind in the batch) compares as NULL and keeps the stored value.
_SQLITE_SUMMARY = (
    "UPDATE contacts SET "
    + ", ".join(f"{c} = {c} + ?{i + 1}" for i, c in enumerate(SUMMARY_COUNTS))
    + ", purchase_total_minor = purchase_total_minor + ?5, "
    + ", ".join(
        f"{c} = CASE WHEN ?{i + 6} > coalesce({c}, '') THEN ?{i + 6} ELSE {c} END"
        for i, c in enumerate((*SUMMARY_TIMES, "last_engaged_at"))
    )
    + " WHERE id = ?11"
)


def apply_engagement(session: Session, summaries: Mapping[int, Engagement]) -> None:
    """Add each contact's batch totals to its engagement summary with relative UPDATEs: exact
    when concurrent batches count the same contacts. No activity rows: the events are them.

    Contacts are updated in id order so two concurrent batches lock rows in the same order
    (no deadlock on PostgreSQL).
    """
    if not summaries:
        return
    connection = session.connection()
    ordered = sorted(summaries.items())
    apply = dialect_of(connection).pick(
        sqlite=_apply_engagement_sqlite, postgresql=_apply_engagement_postgres
    )
    apply(connection, ordered)


def _apply_engagement_sqlite(connection: Connection, ordered: list[tuple[int, Engagement]]) -> None:
    def ts(value: datetime | None) -> str | None:
        return None if value is None else stored_time(value)

    rows = [
        (
            s.opens,
            s.clicks,
            s.purchases,
            s.visits,
            s.amount_minor,
            ts(s.last_open),
            ts(s.last_click),
            ts(s.last_purchase),
            ts(s.last_visit),
            ts(s.last_engaged()),
            contact_id,
        )
        for contact_id, s in ordered
    ]
    # The driver's executemany: these rows are the ingest's hot path.
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(_SQLITE_SUMMARY, rows)
    finally:
        cursor.close()


def _apply_engagement_postgres(
    connection: Connection, ordered: list[tuple[int, Engagement]]
) -> None:
    c = CONTACTS.c
    # PostgreSQL: greatest() ignores NULLs, so a missing kind keeps the stored value.
    statement = (
        update(CONTACTS)
        .where(c.id == bindparam("b_id"))
        .values(
            open_count=c.open_count + bindparam("b_opens"),
            click_count=c.click_count + bindparam("b_clicks"),
            purchase_count=c.purchase_count + bindparam("b_purchases"),
            visit_count=c.visit_count + bindparam("b_visits"),
            purchase_total_minor=c.purchase_total_minor + bindparam("b_amount"),
            last_open_at=func.greatest(
                c.last_open_at, bindparam("b_open", type_=c.last_open_at.type)
            ),
            last_click_at=func.greatest(
                c.last_click_at, bindparam("b_click", type_=c.last_click_at.type)
            ),
            last_purchase_at=func.greatest(
                c.last_purchase_at, bindparam("b_purchase", type_=c.last_purchase_at.type)
            ),
            last_visit_at=func.greatest(
                c.last_visit_at, bindparam("b_visit", type_=c.last_visit_at.type)
            ),
            last_engaged_at=func.greatest(
                c.last_engaged_at, bindparam("b_engaged", type_=c.last_engaged_at.type)
            ),
        )
    )
    connection.execute(
        statement,
        [
            {
                "b_id": contact_id,
                "b_opens": s.opens,
                "b_clicks": s.clicks,
                "b_purchases": s.purchases,
                "b_visits": s.visits,
                "b_amount": s.amount_minor,
                "b_open": s.last_open,
                "b_click": s.last_click,
                "b_purchase": s.last_purchase,
                "b_visit": s.last_visit,
                "b_engaged": s.last_engaged(),
            }
            for contact_id, s in ordered
        ],
    )
