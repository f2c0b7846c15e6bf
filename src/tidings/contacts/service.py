"""The write API of contacts: every change to contact data goes through here.

Other packages import this module (`from tidings.contacts import service as contacts`) and
never write the contacts tables themselves (tests/test_ownership.py fails if one does). Each
function writes its activity rows in the caller's transaction and none commits.

Set-based, for any number of contacts given as ids or as a SELECT of ids:

- tags and lists (tidings.contacts.membership): `add_tags`, `remove_tags`, `subscribe`,
  `unsubscribe`, `set_pending`, and `ensure_tags` / `ensure_lists` for names;
- the contact's own columns (tidings.contacts.writes): `set_status`, `adjust_scores`,
  `set_fields`, `delete_contacts`, `apply_engagement` (the engagement summary);
- whole contacts from inputs (tidings.contacts.upsert): `upsert_contacts`, or
  `validate_batch` then `write_contacts`.

Single-contact, below, for the API, the admin and tracking: each takes a loaded Contact, calls
the set-based function with its id, turns a refusal into an error and keeps the object
current. Tags, lists and fields themselves are in tidings.contacts.catalog, the suppression
list in tidings.contacts.suppressions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from tidings.contacts import repository
from tidings.contacts.catalog import delete_tag
from tidings.contacts.fields import coerce_all
from tidings.contacts.membership import (
    MEMBERSHIP_ACTIVE,
    MEMBERSHIP_PENDING,
    MEMBERSHIP_UNSUBSCRIBED,
    ListRef,
    add_tags,
    ensure_lists,
    ensure_tags,
    rejoin_refused,
    remove_tags,
    set_pending,
    subscribe,
    unsubscribe,
)
from tidings.contacts.models import Contact, MailingList
from tidings.contacts.suppressions import add_suppression, delete_suppression
from tidings.contacts.upsert import (
    ContactInput,
    Rejection,
    UpsertReport,
    ValidatedBatch,
    ValidContact,
    clean_name,
    upsert_contacts,
    validate_batch,
    validate_input,
    write_contacts,
)
from tidings.contacts.writes import (
    NO_CONTACT,
    PROFILE_ATTRIBUTES,
    Changes,
    Engagement,
    adjust_scores,
    apply_engagement,
    checked_status,
    delete_contacts,
    set_email,
    set_fields,
    set_status,
)
from tidings.errors import Conflict, NotFound, ValidationFailed
from tidings.text import refuse_control_characters

__all__ = [
    "MEMBERSHIP_ACTIVE",
    "MEMBERSHIP_PENDING",
    "MEMBERSHIP_UNSUBSCRIBED",
    "NO_CONTACT",
    "PROFILE_ATTRIBUTES",
    "Changes",
    "ContactInput",
    "Engagement",
    "ListRef",
    "MailingList",
    "Rejection",
    "UpsertReport",
    "ValidContact",
    "ValidatedBatch",
    "add_suppression",
    "add_tag",
    "add_tags",
    "adjust_score",
    "adjust_scores",
    "apply_engagement",
    "change_status",
    "create_contact",
    "delete_contact",
    "delete_contacts",
    "delete_suppression",
    "delete_tag",
    "ensure_lists",
    "ensure_tags",
    "get_contact",
    "get_list",
    "rejoin_refused",
    "remove_tag",
    "remove_tags",
    "set_fields",
    "set_pending",
    "set_status",
    "subscribe",
    "subscribe_list",
    "unsubscribe",
    "unsubscribe_list",
    "update_contact",
    "upsert_contacts",
    "validate_batch",
    "validate_input",
    "write_contacts",
]


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


def _keep_current(contact: Contact, **values: Any) -> None:
    """Give the loaded object the values just written by SQL, without marking it changed."""
    for name, value in values.items():
        set_committed_value(contact, name, value)


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
    """Change a contact's email, names, phone or custom fields, one activity per change.
    Everything is checked before anything is written."""
    values: dict[str, Any] = {}
    for attribute, value in (profile or {}).items():
        if attribute not in PROFILE_ATTRIBUTES:
            raise ValidationFailed(f"{attribute}: unknown attribute")
        if isinstance(value, str):
            refuse_control_characters(attribute, value)
        values[attribute] = value
    definitions = None
    if fields:
        definitions = repository.field_definitions(session)
        values.update(coerce_all(definitions, fields))
    if email is not None and set_email(session, contact.id, email, cause=cause, now=now):
        session.expire(contact, ["email", "updated_at"])
    if values:
        changes = set_fields(
            session, [contact.id], values, cause=cause, now=now, definitions=definitions
        )
        if changes.changed:
            session.expire(contact, [*PROFILE_ATTRIBUTES, "fields", "updated_at"])
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
    `force_resubscribe` and a reason, and is recorded as such; without them it raises Conflict.
    """
    status = checked_status(new_status)
    if status == contact.status:
        return False
    changes = set_status(
        session,
        [contact.id],
        status,
        cause=cause,
        now=now,
        reason=reason,
        force_resubscribe=force_resubscribe,
    )
    if contact.id in changes.refused:
        raise Conflict(changes.refused[contact.id])
    if not changes.changed:
        return False
    _keep_current(contact, status=status, updated_at=now)
    return True


def adjust_score(session: Session, contact: Contact, by: int, *, now: datetime, cause: str) -> int:
    """Add `by` to the contact's score; returns the new score."""
    score = adjust_scores(session, [contact.id], by, cause=cause, now=now)[contact.id]
    _keep_current(contact, score=score, updated_at=now)
    return score


def add_tag(session: Session, contact: Contact, tag: str, *, now: datetime, cause: str) -> bool:
    """Tag a contact (the tag is created on first use). False: it had the tag already
    (perhaps added by a concurrent transaction)."""
    name = clean_name(tag, "tag")
    tag_id = ensure_tags(session, [name], now)[name]
    return bool(add_tags(session, [contact.id], {name: tag_id}, cause=cause, now=now).changed)


def remove_tag(session: Session, contact: Contact, tag: str, *, now: datetime, cause: str) -> bool:
    name = tag.strip()
    tag_ids = repository.tag_ids(session, [name])
    if not tag_ids:
        return False
    return bool(remove_tags(session, [contact.id], tag_ids, cause=cause, now=now).changed)


def subscribe_list(
    session: Session,
    contact: Contact,
    mailing_list: MailingList,
    *,
    now: datetime,
    cause: str,
    force_resubscribe: bool = False,
) -> bool:
    """Join a list. False: already on it; Conflict: left it, and rejoining needs
    `force_resubscribe`."""
    changes = subscribe(
        session,
        [contact.id],
        mailing_list,
        cause=cause,
        now=now,
        force_resubscribe=force_resubscribe,
    )
    if contact.id in changes.refused:
        raise Conflict(changes.refused[contact.id])
    return bool(changes.changed)


def unsubscribe_list(
    session: Session, contact: Contact, mailing_list: MailingList, *, now: datetime, cause: str
) -> bool:
    changes = unsubscribe(session, [contact.id], mailing_list, cause=cause, now=now)
    return bool(changes.changed)


def delete_contact(session: Session, contact: Contact, *, now: datetime, cause: str) -> None:
    delete_contacts(session, [contact.id], cause=cause, now=now)
    session.expunge(contact)  # its row is gone: the session must not hand it out again
