"""Queries for contacts, tags, lists, fields and suppressions.

The write functions of this package (membership, writes, upsert) read through these; so does
every other package that looks at contact data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, exists, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from tidings.contacts.fields import FieldDef, FieldType
from tidings.contacts.models import (
    Contact,
    ContactTag,
    CustomField,
    ListMembership,
    MailingList,
    Suppression,
    Tag,
)
from tidings.db.bulk import in_values, values_select

# The contacts a set-based write applies to: their ids, or a SELECT of one column of ids (so a
# caller holding a query - a segment, a list - never loads the ids itself).
ContactIds = Sequence[int] | Select[Any]

# Portable bound on the number of parameters in one IN (...) list.
IN_CHUNK = 500


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def ids_condition(session: Session, column: Any, contacts: ContactIds) -> ColumnElement[bool]:
    """`column IN contacts`, with one bound parameter for a list of ids."""
    if isinstance(contacts, Select):
        return column.in_(contacts)  # type: ignore[no-any-return]
    return in_values(session, column, contacts)


def ids_source(session: Session, contacts: ContactIds, type_: Any) -> Any:
    """The ids as the one column of a FROM clause: the source of an INSERT ... SELECT."""
    if isinstance(contacts, Select):
        return next(iter(contacts.subquery().c))
    return values_select(session, contacts, type_).subquery().c.value


def field_definitions(session: Session) -> dict[str, FieldDef]:
    rows = session.execute(select(CustomField.key, CustomField.type, CustomField.options))
    return {
        key: FieldDef(key, FieldType(type_), tuple(options or ())) for key, type_, options in rows
    }


def contacts_by_email(session: Session, emails: Sequence[str]) -> dict[str, Contact]:
    found: dict[str, Contact] = {}
    for part in chunks(emails):
        for contact in session.scalars(select(Contact).where(Contact.email.in_(part))):
            found[contact.email] = contact
    return found


SNAPSHOT_COLUMNS = (
    Contact.id,
    Contact.email,
    Contact.first_name,
    Contact.last_name,
    Contact.phone,
    Contact.status,
    Contact.fields,
)


def snapshots_by_email(session: Session, emails: Sequence[str]) -> dict[str, Any]:
    """The columns an upsert compares, for the contacts with these addresses (one query)."""
    if not emails:
        return {}
    query = select(*SNAPSHOT_COLUMNS).where(in_values(session, Contact.email, emails))
    return {row.email: row for row in session.execute(query)}


def ids_by_email(session: Session, emails: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in chunks(emails):
        found.update(
            {
                e: i
                for e, i in session.execute(
                    select(Contact.email, Contact.id).where(Contact.email.in_(part))
                )
            }
        )
    return found


def email_of(session: Session, contact_id: int) -> str | None:
    return session.scalar(select(Contact.email).where(Contact.id == contact_id))


def id_by_name(session: Session, model: type[Tag] | type[MailingList], name: str) -> int | None:
    """The id of the tag or list with this name."""
    return session.scalar(select(model.id).where(model.name == name))


def field_id(session: Session, key: str) -> int | None:
    return session.scalar(select(CustomField.id).where(CustomField.key == key))


def suppression(session: Session, value: str) -> Suppression | None:
    return session.scalar(select(Suppression).where(Suppression.value == value))


def existing_ids(session: Session, ids: Sequence[int]) -> set[int]:
    """Which of these contacts exist."""
    if not ids:
        return set()
    return set(session.scalars(select(Contact.id).where(in_values(session, Contact.id, ids))))


def statuses(session: Session, contacts: ContactIds) -> list[tuple[int, str]]:
    """(id, status) of each of these contacts that exists."""
    query = select(Contact.id, Contact.status).where(ids_condition(session, Contact.id, contacts))
    return [(contact_id, status) for contact_id, status in session.execute(query)]


PROFILE_COLUMNS = (Contact.id, Contact.first_name, Contact.last_name, Contact.phone, Contact.fields)


def profiles(session: Session, contacts: ContactIds) -> list[Any]:
    """Names, phone and custom-field values of each of these contacts that exists."""
    query = select(*PROFILE_COLUMNS).where(ids_condition(session, Contact.id, contacts))
    return list(session.execute(query.order_by(Contact.id)))


def membership_status(session: Session, contact_id: int, list_id: int) -> str | None:
    """The contact's membership status on the list (None when not on it)."""
    return session.scalar(
        select(ListMembership.status).where(
            ListMembership.contact_id == contact_id, ListMembership.list_id == list_id
        )
    )


def tag_ids(session: Session, names: Sequence[str]) -> dict[str, int]:
    """Ids of those of the named tags that exist."""
    if not names:
        return {}
    query = select(Tag.name, Tag.id).where(Tag.name.in_(sorted(set(names))))
    return {name: tag_id for name, tag_id in session.execute(query)}


def list_id_by_name(session: Session, name: str) -> int | None:
    return id_by_name(session, MailingList, name)


def tag_names(session: Session, contact_id: int) -> list[str]:
    return list(
        session.scalars(
            select(Tag.name)
            .join(ContactTag, ContactTag.tag_id == Tag.id)
            .where(ContactTag.contact_id == contact_id)
            .order_by(Tag.name)
        )
    )


def list_memberships(session: Session, contact_id: int) -> list[tuple[MailingList, ListMembership]]:
    rows = session.execute(
        select(MailingList, ListMembership)
        .join(ListMembership, ListMembership.list_id == MailingList.id)
        .where(ListMembership.contact_id == contact_id)
        .order_by(MailingList.name)
    )
    return [(ml, lm) for ml, lm in rows]


def is_suppressed(session: Session, email: str) -> bool:
    domain = "@" + email.rpartition("@")[2]
    return bool(session.scalar(select(exists().where(Suppression.value.in_([email, domain])))))


# An address erased on request is kept only as this hash in the suppression list.
ERASED_PREFIX = "sha256:"


def erased_value(email: str) -> str:
    """The suppression entry of an erased address (normalized): its SHA-256, not the address."""
    return ERASED_PREFIX + hashlib.sha256(email.encode()).hexdigest()


def erased_among(session: Session, emails: Sequence[str]) -> set[str]:
    """The addresses among `emails` (normalized) that were erased on request."""
    if not emails:
        return set()
    by_hash = {erased_value(e): e for e in emails}
    found = session.scalars(
        select(Suppression.value).where(in_values(session, Suppression.value, list(by_hash)))
    )
    return {by_hash[value] for value in found}


class email_domain(FunctionElement[str]):
    """SQL: the '@domain' part of an address column (from its '@'; addresses have one)."""

    type = String()
    inherit_cache = True


@compiles(email_domain, "sqlite")
def _email_domain_sqlite(element: email_domain, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"substr({column}, instr({column}, '@'))"


@compiles(email_domain, "postgresql")
def _email_domain_postgresql(element: email_domain, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"substr({column}, strpos({column}, '@'))"


def suppressed_condition(email_column: Any) -> Any:
    """A SQL condition: the address in `email_column` is suppressed, by address or domain.

    Domain entries are stored as '@domain'. Both candidates are looked up by equality, so the
    unique index on the value answers it: a large suppression list costs two index probes per
    address, not a scan.
    """
    return exists().where(Suppression.value.in_([email_column, email_domain(email_column)]))


def filtered_contacts(
    *,
    email: str | None = None,
    tag: str | None = None,
    list_id: int | None = None,
    list_status: str | None = None,
    status: str | None = None,
    created_after: datetime | None = None,
) -> Select[Contact]:
    query = select(Contact)
    if email is not None:
        query = query.where(Contact.email == email)
    if status is not None:
        query = query.where(Contact.status == status)
    if created_after is not None:
        query = query.where(Contact.created_at > created_after)
    if tag is not None:
        query = query.where(
            exists()
            .where(ContactTag.contact_id == Contact.id)
            .where(ContactTag.tag_id == select(Tag.id).where(Tag.name == tag).scalar_subquery())
        )
    if list_id is not None:
        membership = exists().where(
            ListMembership.contact_id == Contact.id, ListMembership.list_id == list_id
        )
        if list_status is not None:
            membership = membership.where(ListMembership.status == list_status)
        query = query.where(membership)
    return query
