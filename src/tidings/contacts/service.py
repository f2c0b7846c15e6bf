"""Mutations of contacts. Each writes its activity rows in the caller's transaction.

Services never commit: the request, import batch or job that calls them does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tidings.activities.service import ActivityRow, ActivityType, record, record_many
from tidings.contacts import repository
from tidings.contacts.emails import InvalidEmail, normalize_email
from tidings.contacts.fields import FieldDef, FieldValueError, coerce_all
from tidings.contacts.models import (
    Contact,
    ContactTag,
    ListMembership,
    MailingList,
    Suppression,
    Tag,
)
from tidings.contacts.policy import ContactStatus, needs_explicit_resubscribe
from tidings.db.bulk import dialect_insert, insert_returning_ids, insert_tuples
from tidings.errors import Conflict, NotFound, ValidationFailed
from tidings.inputs import nul_error
from tidings.text import refuse_control_characters

PROFILE_ATTRIBUTES = ("first_name", "last_name", "phone")
INPUT_ATTRIBUTES = ("email", *PROFILE_ATTRIBUTES, "status", "fields", "tags", "lists")
MEMBERSHIP_ACTIVE = "active"
MEMBERSHIP_UNSUBSCRIBED = "unsubscribed"
MAX_NAME_LENGTH = 200
TAG_ADDED = ActivityType.TAG_ADDED.value
LIST_SUBSCRIBED = ActivityType.LIST_SUBSCRIBED.value


@dataclass(slots=True)
class ContactInput:
    """One contact as given by an import row or an API upsert, before validation.

    Attributes left as None are not touched on an existing contact.
    """

    email: Any
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    status: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    lists: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ValidContact:
    email: str
    profile: dict[str, str]
    status: str | None
    fields: dict[str, Any]
    tags: list[str]
    lists: list[str]


@dataclass(slots=True)
class Rejection:
    index: int
    email: str | None
    reason: str


@dataclass(slots=True)
class UpsertReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    # Contacts whose requested status was not applied because it needs an explicit resubscribe.
    kept_status: list[tuple[str, str]] = field(default_factory=list)
    contact_ids: list[int] = field(default_factory=list)

    def merge(self, other: UpsertReport) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected.extend(other.rejected)
        self.kept_status.extend(other.kept_status)
        self.contact_ids.extend(other.contact_ids)


def _clean_name(name: str, what: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise ValidationFailed(f"{what} name is empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValidationFailed(f"{what} name is longer than {MAX_NAME_LENGTH} characters")
    return cleaned


def validate_input(item: ContactInput, definitions: dict[str, FieldDef]) -> ValidContact:
    """Normalise and check one input; raises ValidationFailed naming the field."""
    for attribute in INPUT_ATTRIBUTES:
        value = getattr(item, attribute)
        if value and (problem := nul_error(value, attribute)):  # runs for every imported row
            raise ValidationFailed(problem)
    try:
        email = normalize_email(item.email)
    except InvalidEmail as exc:
        raise ValidationFailed(f"email: {exc.detail}") from None
    profile: dict[str, str] = {}
    for attribute in PROFILE_ATTRIBUTES:
        value = getattr(item, attribute)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValidationFailed(f"{attribute}: expected text")
        if len(value) > MAX_NAME_LENGTH:
            raise ValidationFailed(f"{attribute}: longer than {MAX_NAME_LENGTH} characters")
        refuse_control_characters(attribute, value)
        profile[attribute] = value.strip()
    status = item.status
    if status is not None:
        try:
            status = ContactStatus(status).value
        except ValueError:
            allowed = ", ".join(s.value for s in ContactStatus)
            raise ValidationFailed(f"status: {status!r} is not one of {allowed}") from None
    try:
        values = coerce_all(definitions, item.fields)
    except FieldValueError as exc:
        raise ValidationFailed(exc.detail, errors=exc.errors) from None
    tags = [_clean_name(tag, "tag") for tag in item.tags]
    lists = [_clean_name(name, "list") for name in item.lists]
    return ValidContact(email, profile, status, values, tags, lists)


def _ensure_named(
    session: Session, model: type[Tag] | type[MailingList], names: Sequence[str], **defaults: Any
) -> dict[str, int]:
    """Ids of the named rows of `model`, creating those that do not exist yet."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    query = select(model.name, model.id)
    ids = {name: id_ for name, id_ in session.execute(query.where(model.name.in_(wanted)))}
    missing = [name for name in wanted if name not in ids]
    if missing:
        # Two transactions may create the same new name at once: the later one waits for the
        # earlier and then skips its row instead of failing on the unique name.
        statement = dialect_insert(session, model).on_conflict_do_nothing(index_elements=["name"])
        session.execute(statement, [{"name": name, **defaults} for name in missing])
        found = session.execute(query.where(model.name.in_(missing)))
        ids.update({name: id_ for name, id_ in found})
    return ids


def ensure_tags(session: Session, names: Sequence[str], now: datetime) -> dict[str, int]:
    """Ids of the named tags, creating those that do not exist yet."""
    return _ensure_named(session, Tag, names, created_at=now)


def ensure_lists(session: Session, names: Sequence[str], now: datetime) -> dict[str, int]:
    """Ids of the named lists, creating those that do not exist yet."""
    return _ensure_named(session, MailingList, names, created_at=now, double_opt_in=False)


def _activity(
    contact_id: int, type_: ActivityType, cause: str, now: datetime, **data: Any
) -> ActivityRow:
    return ActivityRow(contact_id, type_.value, cause, now, data)


def _diff_existing(
    contact: Any,
    item: ValidContact,
    *,
    cause: str,
    now: datetime,
    force_resubscribe: bool,
    reason: str | None,
    report: UpsertReport,
) -> tuple[dict[str, Any] | None, list[ActivityRow]]:
    """The UPDATE parameters (or None) and activities that bring `contact` in line with `item`."""
    changes: dict[str, Any] = {}
    activities: list[ActivityRow] = []
    for attribute, value in item.profile.items():
        old = getattr(contact, attribute)
        if value != (old or ""):
            changes[attribute] = value or None
            activities.append(
                _activity(
                    contact.id,
                    ActivityType.FIELD_CHANGED,
                    cause,
                    now,
                    field=attribute,
                    old=old,
                    new=value or None,
                )
            )
    if item.fields:
        merged = dict(contact.fields or {})
        for key, value in item.fields.items():
            old = merged.get(key)
            if value != old:
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
                activities.append(
                    _activity(
                        contact.id,
                        ActivityType.FIELD_CHANGED,
                        cause,
                        now,
                        field=key,
                        old=old,
                        new=value,
                    )
                )
        if merged != (contact.fields or {}):
            changes["fields"] = merged
    if item.status is not None and item.status != contact.status:
        if needs_explicit_resubscribe(contact.status, item.status) and not force_resubscribe:
            report.kept_status.append((contact.email, contact.status))
        else:
            changes["status"] = item.status
            activities.append(
                _activity(
                    contact.id,
                    ActivityType.STATUS_CHANGED,
                    cause,
                    now,
                    old=contact.status,
                    new=item.status,
                    reason=reason,
                    forced=force_resubscribe
                    and needs_explicit_resubscribe(contact.status, item.status),
                )
            )
    if not changes:
        return None, activities
    changes["id"] = contact.id
    changes["updated_at"] = now
    return changes, activities


@dataclass(slots=True)
class ValidatedBatch:
    """Inputs after validation: the valid ones by address (with their index), and the rejected."""

    valid: dict[str, tuple[int, ValidContact]] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)


def validate_batch(
    items: Sequence[ContactInput],
    definitions: dict[str, FieldDef],
    *,
    extra_tags: Sequence[str] = (),
    extra_lists: Sequence[str] = (),
    index_offset: int = 0,
) -> ValidatedBatch:
    """Validate inputs without touching the database (so it can overlap with writes)."""
    batch = ValidatedBatch()
    valid = batch.valid
    for offset, item in enumerate(items):
        index = index_offset + offset
        try:
            checked = validate_input(item, definitions)
        except ValidationFailed as exc:
            email = item.email if isinstance(item.email, str) else None
            batch.rejected.append(Rejection(index, email, exc.detail))
            continue
        if checked.email in valid:
            first = valid[checked.email][0]
            batch.rejected.append(
                Rejection(index, checked.email, f"duplicate of the contact at index {first}")
            )
            continue
        checked.tags.extend(t for t in extra_tags if t not in checked.tags)
        checked.lists.extend(ls for ls in extra_lists if ls not in checked.lists)
        valid[checked.email] = (index, checked)
    return batch


def upsert_contacts(
    session: Session,
    items: Sequence[ContactInput],
    *,
    now: datetime,
    cause: str,
    default_status: str = ContactStatus.SUBSCRIBED,
    extra_tags: Sequence[str] = (),
    extra_lists: Sequence[str] = (),
    force_resubscribe: bool = False,
    reason: str | None = None,
    index_offset: int = 0,
    definitions: dict[str, FieldDef] | None = None,
) -> UpsertReport:
    """Create or update many contacts set-wise: a few statements per batch, not per row.

    Rows that fail validation are reported with their index and reason; the rest are written.
    An input that changes nothing writes nothing (so importing a file twice is idempotent).
    """
    definitions = definitions if definitions is not None else repository.field_definitions(session)
    batch = validate_batch(
        items,
        definitions,
        extra_tags=extra_tags,
        extra_lists=extra_lists,
        index_offset=index_offset,
    )
    return write_contacts(
        session,
        batch,
        now=now,
        cause=cause,
        default_status=default_status,
        force_resubscribe=force_resubscribe,
        reason=reason,
    )


def write_contacts(
    session: Session,
    batch: ValidatedBatch,
    *,
    now: datetime,
    cause: str,
    default_status: str = ContactStatus.SUBSCRIBED,
    force_resubscribe: bool = False,
    reason: str | None = None,
) -> UpsertReport:
    """Write a validated batch: inserts, updates, tags, lists and their activities."""
    report = UpsertReport(rejected=list(batch.rejected))
    valid = batch.valid
    if not valid:
        return report

    existing = repository.snapshots_by_email(session, list(valid))
    activities: list[ActivityRow] = []
    updates: list[dict[str, Any]] = []
    touched: set[str] = set()
    new_rows: list[dict[str, Any]] = []
    for email, (_, wanted) in valid.items():
        contact = existing.get(email)
        if contact is None:
            new_rows.append(
                {
                    "email": email,
                    "first_name": wanted.profile.get("first_name") or None,
                    "last_name": wanted.profile.get("last_name") or None,
                    "phone": wanted.profile.get("phone") or None,
                    "status": wanted.status or default_status,
                    "score": 0,
                    "fields": {k: v for k, v in wanted.fields.items() if v is not None},
                    "created_at": now,
                    "updated_at": now,
                }
            )
            continue
        changes, changed = _diff_existing(
            contact,
            wanted,
            cause=cause,
            now=now,
            force_resubscribe=force_resubscribe,
            reason=reason,
            report=report,
        )
        if changes is not None:
            updates.append(changes)
            touched.add(email)
        activities.extend(changed)

    ids = {email: contact.id for email, contact in existing.items()}
    if new_rows:
        new_ids = insert_returning_ids(session, Contact.__table__, new_rows)  # type: ignore[arg-type]
        for row, contact_id in zip(new_rows, new_ids, strict=True):
            email = row["email"]
            ids[email] = contact_id
            activities.append(
                _activity(
                    contact_id,
                    ActivityType.CONTACT_CREATED,
                    cause,
                    now,
                    email=email,
                    status=valid[email][1].status or default_status,
                )
            )
        report.created = len(new_rows)
    if updates:
        # Group by the set of changed columns: one executemany per shape.
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in updates:
            shapes.setdefault(tuple(sorted(row)), []).append(row)
        for rows in shapes.values():
            session.execute(update(Contact), rows)

    known = set(existing)
    membership_touched = _link_tags(
        session, valid, ids, cause=cause, now=now, activities=activities, known=known
    )
    membership_touched |= _link_lists(
        session,
        valid,
        ids,
        cause=cause,
        now=now,
        activities=activities,
        force_resubscribe=force_resubscribe,
        known=known,
    )
    record_many(session, activities)

    for email in valid:
        if email in existing:
            if email in touched or email in membership_touched:
                report.updated += 1
            else:
                report.unchanged += 1
    report.contact_ids = [ids[email] for email in valid]
    return report


def _link_tags(
    session: Session,
    valid: dict[str, tuple[int, ValidContact]],
    ids: dict[str, int],
    *,
    cause: str,
    now: datetime,
    activities: list[ActivityRow],
    known: set[str],
) -> set[str]:
    wanted = [(email, tag) for email, (_, item) in valid.items() for tag in item.tags]
    if not wanted:
        return set()
    tag_ids = ensure_tags(session, [tag for _, tag in wanted], now)
    present = repository.pairs_present(
        session,
        ContactTag.contact_id,
        ContactTag.tag_id,
        # Contacts created in this batch have no tags yet: only look up the others.
        sorted({ids[e] for e, _ in wanted if e in known}),
        sorted(set(tag_ids.values())),
    )
    rows: list[tuple[int, int, datetime]] = []
    touched = set()
    for email, tag in wanted:
        pair = (ids[email], tag_ids[tag])
        if pair in present:
            continue
        present.add(pair)
        rows.append((pair[0], pair[1], now))
        activities.append(
            ActivityRow(pair[0], TAG_ADDED, cause, now, {"tag": tag, "tag_id": pair[1]})
        )
        touched.add(email)
    if rows:
        table = ContactTag.__table__
        insert_tuples(session, table, ("contact_id", "tag_id", "created_at"), rows)  # type: ignore[arg-type]
    return touched


def _link_lists(
    session: Session,
    valid: dict[str, tuple[int, ValidContact]],
    ids: dict[str, int],
    *,
    cause: str,
    now: datetime,
    activities: list[ActivityRow],
    force_resubscribe: bool,
    known: set[str],
) -> set[str]:
    wanted = [(email, name) for email, (_, item) in valid.items() for name in item.lists]
    if not wanted:
        return set()
    list_ids = ensure_lists(session, [name for _, name in wanted], now)
    present = repository.memberships(
        session, sorted({ids[e] for e, _ in wanted if e in known}), sorted(set(list_ids.values()))
    )
    inserts: list[tuple[int, int, str, datetime, datetime]] = []
    reactivate: list[dict[str, Any]] = []
    touched = set()
    for email, name in wanted:
        pair = (ids[email], list_ids[name])
        status = present.get(pair)
        if status == MEMBERSHIP_ACTIVE:
            continue
        if status == MEMBERSHIP_UNSUBSCRIBED:
            # Someone who left a list only rejoins by an explicit resubscribe (C3).
            if not force_resubscribe:
                continue
            reactivate.append(
                {
                    "contact_id": pair[0],
                    "list_id": pair[1],
                    "status": MEMBERSHIP_ACTIVE,
                    "updated_at": now,
                }
            )
        else:
            inserts.append((pair[0], pair[1], MEMBERSHIP_ACTIVE, now, now))
        present[pair] = MEMBERSHIP_ACTIVE
        data = {"list": name, "list_id": pair[1]}
        activities.append(ActivityRow(pair[0], LIST_SUBSCRIBED, cause, now, data))
        touched.add(email)
    if inserts:
        columns = ("contact_id", "list_id", "status", "created_at", "updated_at")
        insert_tuples(session, ListMembership.__table__, columns, inserts)  # type: ignore[arg-type]
    if reactivate:
        session.execute(update(ListMembership), reactivate)
    return touched


# ---- single-contact mutations (API, admin, automations) ---------------------------------


def get_contact(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} does not exist")
    return contact


def get_list(session: Session, list_id: int) -> MailingList:
    mailing_list = session.get(MailingList, list_id)
    if mailing_list is None:
        raise NotFound(f"list {list_id} does not exist")
    return mailing_list


def create_contact(session: Session, item: ContactInput, *, now: datetime, cause: str) -> Contact:
    definitions = repository.field_definitions(session)
    valid = validate_input(item, definitions)
    if repository.contacts_by_email(session, [valid.email]):
        raise Conflict(f"a contact with email {valid.email} already exists")
    report = upsert_contacts(session, [item], now=now, cause=cause, definitions=definitions)
    if report.rejected:
        raise ValidationFailed(report.rejected[0].reason)
    return get_contact(session, report.contact_ids[0])


def update_contact(
    session: Session,
    contact: Contact,
    *,
    now: datetime,
    cause: str,
    email: str | None = None,
    profile: dict[str, str | None] | None = None,
    fields: dict[str, Any] | None = None,
) -> Contact:
    """Change a contact's email, names, phone or custom fields, one activity per change."""
    activities: list[ActivityRow] = []
    if email is not None:
        try:
            normalized = normalize_email(email)
        except InvalidEmail as exc:
            raise ValidationFailed(f"email: {exc.detail}") from None
        if normalized != contact.email:
            if repository.contacts_by_email(session, [normalized]):
                raise Conflict(f"a contact with email {normalized} already exists")
            activities.append(
                _activity(
                    contact.id,
                    ActivityType.FIELD_CHANGED,
                    cause,
                    now,
                    field="email",
                    old=contact.email,
                    new=normalized,
                )
            )
            contact.email = normalized
    for attribute, value in (profile or {}).items():
        if attribute not in PROFILE_ATTRIBUTES:
            raise ValidationFailed(f"{attribute}: unknown attribute")
        if isinstance(value, str):
            refuse_control_characters(attribute, value)
        value = value.strip() if isinstance(value, str) else None
        old = getattr(contact, attribute)
        if (value or None) != old:
            activities.append(
                _activity(
                    contact.id,
                    ActivityType.FIELD_CHANGED,
                    cause,
                    now,
                    field=attribute,
                    old=old,
                    new=value or None,
                )
            )
            setattr(contact, attribute, value or None)
    if fields:
        values = coerce_all(repository.field_definitions(session), fields)
        merged = dict(contact.fields or {})
        for key, value in values.items():
            if merged.get(key) != value:
                activities.append(
                    _activity(
                        contact.id,
                        ActivityType.FIELD_CHANGED,
                        cause,
                        now,
                        field=key,
                        old=merged.get(key),
                        new=value,
                    )
                )
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
        contact.fields = merged
    if activities:
        contact.updated_at = now
        session.flush()
        record_many(session, activities)
    return contact


def change_status(
    session: Session,
    contact: Contact,
    new_status: str,
    *,
    now: datetime,
    cause: str,
    reason: str | None = None,
    force_resubscribe: bool = False,
) -> bool:
    """Set a contact's status (C3). Returns whether it changed.

    Leaving unsubscribed, bounced or complained for a status that receives mail needs
    `force_resubscribe` and a reason, and is recorded as such.
    """
    try:
        status = ContactStatus(new_status).value
    except ValueError:
        allowed = ", ".join(s.value for s in ContactStatus)
        raise ValidationFailed(f"status: {new_status!r} is not one of {allowed}") from None
    if status == contact.status:
        return False
    forced = needs_explicit_resubscribe(contact.status, status)
    if forced and not (force_resubscribe and reason):
        raise Conflict(
            f"contact is {contact.status}; moving it to {status} needs an explicit resubscribe "
            "(force_resubscribe=true with a reason)"
        )
    record(
        session,
        contact.id,
        ActivityType.STATUS_CHANGED,
        cause,
        now,
        {"old": contact.status, "new": status, "reason": reason, "forced": forced},
    )
    contact.status = status
    contact.updated_at = now
    session.flush()
    return True


def adjust_score(session: Session, contact: Contact, by: int, *, now: datetime, cause: str) -> int:
    old = contact.score
    contact.score = old + by
    contact.updated_at = now
    session.flush()
    record(
        session,
        contact.id,
        ActivityType.SCORE_CHANGED,
        cause,
        now,
        {"old": old, "new": contact.score, "by": by},
    )
    return contact.score


def add_tag(session: Session, contact: Contact, tag: str, *, now: datetime, cause: str) -> bool:
    name = _clean_name(tag, "tag")
    tag_id = ensure_tags(session, [name], now)[name]
    statement = dialect_insert(session, ContactTag).on_conflict_do_nothing()
    result = session.execute(statement.values(contact_id=contact.id, tag_id=tag_id, created_at=now))
    if not result.rowcount:  # type: ignore[attr-defined]
        return False  # had it already (perhaps added by a concurrent transaction)
    record(session, contact.id, ActivityType.TAG_ADDED, cause, now, {"tag": name, "tag_id": tag_id})
    return True


def remove_tag(session: Session, contact: Contact, tag: str, *, now: datetime, cause: str) -> bool:
    tag_id = session.scalar(select(Tag.id).where(Tag.name == tag.strip()))
    if tag_id is None:
        return False
    result = session.execute(
        delete(ContactTag).where(ContactTag.contact_id == contact.id, ContactTag.tag_id == tag_id)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    record(
        session,
        contact.id,
        ActivityType.TAG_REMOVED,
        cause,
        now,
        {"tag": tag.strip(), "tag_id": tag_id},
    )
    return True


def subscribe_list(
    session: Session,
    contact: Contact,
    mailing_list: MailingList,
    *,
    now: datetime,
    cause: str,
    force_resubscribe: bool = False,
) -> bool:
    membership = session.get(ListMembership, (contact.id, mailing_list.id))
    if membership is not None and membership.status == MEMBERSHIP_ACTIVE:
        return False
    if (
        membership is not None
        and membership.status == MEMBERSHIP_UNSUBSCRIBED
        and not force_resubscribe
    ):
        raise Conflict(
            f"contact unsubscribed from list {mailing_list.name!r}; "
            "rejoining needs force_resubscribe=true"
        )
    if membership is None:
        session.add(
            ListMembership(
                contact_id=contact.id,
                list_id=mailing_list.id,
                status=MEMBERSHIP_ACTIVE,
                created_at=now,
                updated_at=now,
            )
        )
    else:
        membership.status = MEMBERSHIP_ACTIVE
        membership.updated_at = now
    session.flush()
    record(
        session,
        contact.id,
        ActivityType.LIST_SUBSCRIBED,
        cause,
        now,
        {"list": mailing_list.name, "list_id": mailing_list.id},
    )
    return True


def unsubscribe_list(
    session: Session, contact: Contact, mailing_list: MailingList, *, now: datetime, cause: str
) -> bool:
    membership = session.get(ListMembership, (contact.id, mailing_list.id))
    if membership is None or membership.status == MEMBERSHIP_UNSUBSCRIBED:
        return False
    membership.status = MEMBERSHIP_UNSUBSCRIBED
    membership.updated_at = now
    session.flush()
    record(
        session,
        contact.id,
        ActivityType.LIST_UNSUBSCRIBED,
        cause,
        now,
        {"list": mailing_list.name, "list_id": mailing_list.id},
    )
    return True


def delete_contact(session: Session, contact: Contact, *, now: datetime, cause: str) -> None:
    record(session, contact.id, ActivityType.CONTACT_DELETED, cause, now, {"email": contact.email})
    session.execute(delete(ContactTag).where(ContactTag.contact_id == contact.id))  # no FK
    session.delete(contact)
    session.flush()


def delete_tag(session: Session, tag: Tag) -> None:
    """Delete a tag and take it off every contact (contact_tags has no foreign keys)."""
    session.execute(delete(ContactTag).where(ContactTag.tag_id == tag.id))
    session.delete(tag)
    session.flush()


def add_suppression(
    session: Session, value: str, *, now: datetime, reason: str | None
) -> Suppression:
    """Suppress an address, or a whole domain given as '@domain'."""
    raw = value.strip().lower()
    if raw.startswith("@"):
        try:
            normalized = "@" + normalize_email("x" + raw).partition("@")[2]
        except InvalidEmail as exc:
            raise ValidationFailed(f"value: not a valid domain: {exc.detail}") from None
    else:
        try:
            normalized = normalize_email(raw)
        except InvalidEmail as exc:
            raise ValidationFailed(f"value: {exc.detail}") from None
    existing = session.scalar(select(Suppression).where(Suppression.value == normalized))
    if existing is not None:
        return existing
    entry = Suppression(value=normalized, reason=reason, created_at=now)
    session.add(entry)
    session.flush()
    return entry
