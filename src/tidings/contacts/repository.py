"""Queries for contacts, tags, lists, fields and suppressions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, exists, select
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
from tidings.db.bulk import in_values

# Portable bound on the number of parameters in one IN (...) list.
IN_CHUNK = 500


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


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


def pairs_present(
    session: Session, column_a: Any, column_b: Any, a_values: Sequence[int], b_values: Sequence[int]
) -> set[tuple[int, int]]:
    """Which (a, b) pairs of a two-column link table exist, for the given a's and b's."""
    present: set[tuple[int, int]] = set()
    if not a_values or not b_values:
        return present
    query = select(column_a, column_b).where(
        in_values(session, column_a, a_values), column_b.in_(b_values)
    )
    present.update((a, b) for a, b in session.execute(query))
    return present


def memberships(
    session: Session, contact_ids: Sequence[int], list_ids: Sequence[int]
) -> dict[tuple[int, int], str]:
    found: dict[tuple[int, int], str] = {}
    if not contact_ids or not list_ids:
        return found
    query = select(ListMembership.contact_id, ListMembership.list_id, ListMembership.status).where(
        in_values(session, ListMembership.contact_id, contact_ids),
        ListMembership.list_id.in_(list_ids),
    )
    found.update({(c, ls): status for c, ls, status in session.execute(query)})
    return found


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
