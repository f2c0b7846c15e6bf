"""Contacts as rows of the columns `tidings contacts import` reads, streamed for exports.

One query however many contacts: each contact's tags and active lists are aggregated by
correlated subqueries on the primary keys of `contact_tags` and `list_memberships`, and the
rows come in partitions from a server-side cursor (PostgreSQL) or SQLite's stepping cursor -
so memory stays flat at a million contacts. A file written from these rows imports back
unchanged (tests/jobs/test_export.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from tidings.contacts import repository
from tidings.contacts.csvfile import MULTI_SEPARATOR, cell
from tidings.contacts.models import Contact, ContactTag, ListMembership, MailingList, Tag

IMPORT_COLUMNS = ("email", "first_name", "last_name", "phone", "status", "tags", "lists")
PARTITION = 10_000


def _names(name: Any, link: Any, joined: Any, on: Any, *where: Any) -> Any:
    return (
        select(func.aggregate_strings(name, MULTI_SEPARATOR))
        .select_from(link)
        .join(joined, on)
        .where(*where)
        .scalar_subquery()
    )


def _sorted(names: str | None) -> str:
    """The names as the importer reads them back; sorted so an export is deterministic."""
    if not names:
        return ""
    if MULTI_SEPARATOR not in names:
        return names
    return MULTI_SEPARATOR.join(sorted(names.split(MULTI_SEPARATOR)))


def header(session: Session) -> tuple[list[str], list[str]]:
    """The header of an export, and the custom field keys in it (in that order)."""
    keys = sorted(repository.field_definitions(session))
    return [*IMPORT_COLUMNS, *keys], keys


def count(session: Session, where: ColumnElement[bool] | None) -> int:
    query = select(func.count()).select_from(Contact)
    if where is not None:
        query = query.where(where)
    return int(session.scalar(query) or 0)


def rows(
    session: Session, where: ColumnElement[bool] | None, field_keys: list[str]
) -> Iterator[list[list[str]]]:
    """The contacts matching `where` (all when None) as CSV rows, in id order, a partition of
    up to PARTITION rows at a time."""
    tags = _names(
        Tag.name, ContactTag, Tag, Tag.id == ContactTag.tag_id, ContactTag.contact_id == Contact.id
    )
    lists = _names(
        MailingList.name,
        ListMembership,
        MailingList,
        MailingList.id == ListMembership.list_id,
        ListMembership.contact_id == Contact.id,
        ListMembership.status == "active",
    )
    columns: list[Any] = [
        Contact.email,
        Contact.first_name,
        Contact.last_name,
        Contact.phone,
        Contact.status,
        tags,
        lists,
    ]
    if field_keys:
        columns.append(Contact.fields)
    query = select(*columns).order_by(Contact.id)
    if where is not None:
        query = query.where(where)
    result = session.execute(query.execution_options(yield_per=PARTITION))
    for partition in result.partitions():
        yield [_row(r, field_keys) for r in partition]


def _row(r: Any, field_keys: list[str]) -> list[str]:
    row = [r[0], r[1] or "", r[2] or "", r[3] or "", r[4], _sorted(r[5]), _sorted(r[6])]
    if field_keys:
        values = r[7] or {}
        row.extend(cell(values.get(k)) for k in field_keys)
    return row
