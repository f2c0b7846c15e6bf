"""Contacts as rows of the columns `tidings contacts import` reads, streamed for exports.

One query however many contacts: each contact's tags and active lists are aggregated by
correlated subqueries on the primary keys of `contact_tags` and `list_memberships`, and the
rows come in partitions from a server-side cursor (PostgreSQL) or SQLite's stepping cursor -
so memory stays flat at a million contacts. A file written from these rows imports back
unchanged (tests/jobs/test_export.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from tidings.contacts import repository
from tidings.contacts.csvfile import MULTI_SEPARATOR, cell
from tidings.contacts.models import Contact, ContactTag, ListMembership, MailingList, Tag
from tidings.db.dialect import dialect_of

IMPORT_COLUMNS = ("email", "first_name", "last_name", "phone", "status", "tags", "lists")
PARTITION = 10_000


def _names(postgres: bool, name: Any, link: Any, joined: Any, on: Any, *where: Any) -> Any:
    """A contact's names joined by '|', aggregated by the database: in name order on
    PostgreSQL (string_agg ... ORDER BY); SQLite's group_concat has no order (before 3.44),
    so `_in_order` sorts the few cells that hold several names."""
    separator: Any = literal_column(f"'{MULTI_SEPARATOR}'")
    aggregate = (
        func.string_agg(name, aggregate_order_by(separator, name))
        if postgres
        else func.group_concat(name, separator)
    )
    return select(aggregate).select_from(link).join(joined, on).where(*where).scalar_subquery()


def _sorted(names: str | None) -> str | None:
    if names is None or MULTI_SEPARATOR not in names:
        return names
    return MULTI_SEPARATOR.join(sorted(names.split(MULTI_SEPARATOR)))


def _in_order(row: Any) -> Any:
    """The row with its tags and lists in name order (SQLite), left as it is when each holds
    at most one name - most rows: nothing is copied for them."""
    tags, lists = row[5], row[6]
    if (tags is None or MULTI_SEPARATOR not in tags) and (
        lists is None or MULTI_SEPARATOR not in lists
    ):
        return row
    return (*row[:5], _sorted(tags), _sorted(lists), *row[7:])


def header(session: Session) -> tuple[list[str], list[str]]:
    """The header of an export, and the custom field keys in it (in that order)."""
    keys = sorted(repository.field_definitions(session))
    return [*IMPORT_COLUMNS, *keys], keys


def count(session: Session, where: ColumnElement[bool] | None) -> int:
    query = select(func.count()).select_from(Contact)
    if where is not None:
        query = query.where(where)
    return int(session.scalar(query) or 0)


def query(
    session: Session, where: ColumnElement[bool] | None, field_keys: list[str]
) -> Select[Any]:
    """The SELECT of the export: the importer's columns (tags and lists aggregated), then the
    custom fields' JSON when there are custom fields; in id order."""
    postgres = dialect_of(session).is_postgres
    tags = _names(
        postgres,
        Tag.name,
        ContactTag,
        Tag,
        Tag.id == ContactTag.tag_id,
        ContactTag.contact_id == Contact.id,
    )
    lists = _names(
        postgres,
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
    statement = select(*columns).order_by(Contact.id)
    return statement if where is None else statement.where(where)


def rows(
    session: Session, statement: Select[Any], field_keys: list[str]
) -> Iterator[Sequence[Sequence[Any]]]:
    """The rows of `statement` (from `query`) as CSV rows, a partition of up to PARTITION rows
    at a time."""
    postgres = dialect_of(session).is_postgres
    # Core, not ORM, execution: the rows come as tuples without the ORM's loading layers.
    result = session.connection().execution_options(yield_per=PARTITION).execute(statement)
    for partition in result.partitions():
        ordered: Sequence[Any] = partition if postgres else [_in_order(r) for r in partition]
        if field_keys:
            yield [_with_fields(r, field_keys) for r in ordered]
        else:
            yield ordered  # strings and NULLs, as the CSV writer takes them


def _with_fields(r: Any, field_keys: list[str]) -> list[Any]:
    values = r[7] or {}
    return [*r[:7], *(cell(values.get(k)) for k in field_keys)]
