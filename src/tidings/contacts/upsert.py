"""Validating and writing contacts in batches: the CSV import, the bulk API, single creates.

`upsert_contacts` (or `validate_batch` then `write_contacts`, so validation can overlap with
the previous batch's writes) creates and updates many contacts in a few statements per batch
and writes their activity rows (`contact_created`, `field_changed`, `status_changed`, and
through tidings.contacts.membership the tags and lists). Services never commit: the request,
import batch or job that calls them does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from tidings.activities.service import ActivityType, record_tuples
from tidings.contacts import membership, repository, search
from tidings.contacts.emails import InvalidEmail, normalize_email
from tidings.contacts.fields import FieldDef, FieldValueError, coerce_all
from tidings.contacts.models import Contact
from tidings.contacts.policy import ContactStatus, needs_explicit_resubscribe
from tidings.contacts.writes import (
    FIELD_CHANGED,
    PROFILE_ATTRIBUTES,
    STATUS_CHANGED,
    Row,
    checked_status,
    field_data,
    status_data,
    update_by_id,
)
from tidings.db.bulk import insert_returning_ids
from tidings.errors import ValidationFailed
from tidings.inputs import nul_error
from tidings.text import refuse_control_characters

MAX_NAME_LENGTH = 200
INPUT_ATTRIBUTES = ("email", *PROFILE_ATTRIBUTES, "status", "fields", "tags", "lists")
CONTACT_CREATED = ActivityType.CONTACT_CREATED.value


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
    # Kept only when the contact is created (an export re-imported into an empty database);
    # an existing contact's score and creation time are its own, not the file's.
    score: Any = None
    created_at: Any = None


ERASED = "this address was erased on request and may not be added again"


@dataclass(slots=True)
class ValidContact:
    email: str
    profile: dict[str, str]
    status: str | None
    fields: dict[str, Any]
    tags: list[str]
    lists: list[str]
    score: int | None = None
    created_at: datetime | None = None


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


def clean_name(name: str, what: str) -> str:
    """A tag or list name as stored; raises ValidationFailed naming what is wrong."""
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
    status = None if item.status is None else checked_status(item.status)
    try:
        values = coerce_all(definitions, item.fields)
    except FieldValueError as exc:
        raise ValidationFailed(exc.detail, errors=exc.errors) from None
    tags = [clean_name(tag, "tag") for tag in item.tags]
    lists = [clean_name(name, "list") for name in item.lists]
    return ValidContact(
        email,
        profile,
        status,
        values,
        tags,
        lists,
        score=_score(item.score),
        created_at=_created_at(item.created_at),
    )


MAX_SCORE = 2**31 - 1  # the column is a 32-bit integer


def _score(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        score = int(value)
    except (TypeError, ValueError):
        raise ValidationFailed(f"score: {str(value)[:40]!r} is not a whole number") from None
    if not -MAX_SCORE <= score <= MAX_SCORE:
        raise ValidationFailed(f"score: {score} is out of range (at most {MAX_SCORE})")
    return score


def _created_at(value: Any) -> datetime | None:
    """An ISO 8601 time as exports write it; one without a time zone is UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ValidationFailed(
                f"created_at: {str(value)[:40]!r} is not an ISO 8601 date and time"
            ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _diff_existing(
    contact: Any,
    item: ValidContact,
    *,
    cause: str,
    now: datetime,
    force_resubscribe: bool,
    reason: str | None,
    report: UpsertReport,
) -> tuple[dict[str, Any] | None, list[Row]]:
    """The UPDATE parameters (or None) and activities that bring `contact` in line with `item`."""
    changes: dict[str, Any] = {}
    rows: list[Row] = []
    for attribute, value in item.profile.items():
        old = getattr(contact, attribute)
        if value != (old or ""):
            changes[attribute] = value or None
            rows.append(
                (contact.id, FIELD_CHANGED, cause, now, field_data(attribute, old, value or None))
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
                rows.append((contact.id, FIELD_CHANGED, cause, now, field_data(key, old, value)))
        if merged != (contact.fields or {}):
            changes["fields"] = merged
    if item.status is not None and item.status != contact.status:
        forced = needs_explicit_resubscribe(contact.status, item.status)
        if forced and not force_resubscribe:
            report.kept_status.append((contact.email, contact.status))
        else:
            changes["status"] = item.status
            data = status_data(contact.status, item.status, reason, forced)
            rows.append((contact.id, STATUS_CHANGED, cause, now, data))
    if not changes:
        return None, rows
    changes["id"] = contact.id
    changes["updated_at"] = now
    return changes, rows


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
    erased = repository.erased_among(session, [e for e in valid if e not in existing])
    if erased:  # erased on request: never created again (list hygiene, tidings.jobs)
        report.rejected.extend(Rejection(valid[e][0], e, ERASED) for e in sorted(erased))
        valid = {e: v for e, v in valid.items() if e not in erased}
        if not valid:
            return report
    rows: list[Row] = []
    updates: list[dict[str, Any]] = []
    touched: set[int] = set()
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
                    "score": wanted.score or 0,
                    "fields": {k: v for k, v in wanted.fields.items() if v is not None},
                    "created_at": wanted.created_at or now,
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
            touched.add(contact.id)
        rows.extend(changed)

    ids = {email: contact.id for email, contact in existing.items()}
    if new_rows:
        new_ids = insert_returning_ids(session, Contact.__table__, new_rows)  # type: ignore[arg-type]
        search.index_new(session, new_ids)
        for row, contact_id in zip(new_rows, new_ids, strict=True):
            email = row["email"]
            ids[email] = contact_id
            data = {"email": email, "status": row["status"]}
            rows.append((contact_id, CONTACT_CREATED, cause, now, data))
        report.created = len(new_rows)
    update_by_id(session, updates)
    record_tuples(session, rows)

    touched |= _link(session, valid, ids, cause=cause, now=now, force_resubscribe=force_resubscribe)
    for email in existing:
        if ids[email] in touched:
            report.updated += 1
        else:
            report.unchanged += 1
    report.contact_ids = [ids[email] for email in valid]
    return report


def _link(
    session: Session,
    valid: dict[str, tuple[int, ValidContact]],
    ids: dict[str, int],
    *,
    cause: str,
    now: datetime,
    force_resubscribe: bool,
) -> set[int]:
    """Tag the contacts of a batch and subscribe them to lists as their inputs say: one
    statement per tag or list, however many contacts get it. Someone who left a list only
    rejoins by an explicit resubscribe (C3). Returns the contacts that got something new."""
    tags: dict[str, list[int]] = {}
    lists: dict[str, list[int]] = {}
    for email, (_, item) in valid.items():
        for tag in item.tags:
            tags.setdefault(tag, []).append(ids[email])
        for name in item.lists:
            lists.setdefault(name, []).append(ids[email])
    touched: set[int] = set()
    tag_ids = membership.ensure_tags(session, list(tags), now)
    for tag, contact_ids in tags.items():
        added = membership.add_tags(
            session, sorted(set(contact_ids)), {tag: tag_ids[tag]}, cause=cause, now=now
        )
        touched.update(added.changed)
    list_ids = membership.ensure_lists(session, list(lists), now)
    for name, contact_ids in lists.items():
        joined = membership.subscribe(
            session,
            sorted(set(contact_ids)),
            membership.ListRef(list_ids[name], name),
            cause=cause,
            now=now,
            force_resubscribe=force_resubscribe,
        )
        touched.update(joined.changed)
    return touched
