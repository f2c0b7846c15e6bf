"""Search contacts by any part of their address or name, in any case, through an index.

The index is the trigram index of migration 0027 (tidings.db.extras): on PostgreSQL, GIN
indexes that serve the `LIKE` below; on SQLite, an FTS5 trigram table asked with MATCH, which
finds a text of three characters or more (shorter ones, which match too much for an index to
help, are the `LIKE` scan). `%` and `_` are searched as themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, column, func, insert, or_, select, table
from sqlalchemy.orm import Session

from tidings.contacts.models import Contact
from tidings.db.dialect import dialect_of
from tidings.db.extras import SEARCH_TABLE

TRIGRAM = 3  # the shortest text the trigram table can find
WINDOW = 20_000  # newest contacts looked through before asking the index
_search = table(
    SEARCH_TABLE,
    column("rowid"),
    column(SEARCH_TABLE),
    column("email"),
    column("first_name"),
    column("last_name"),
)


def index_new(session: Session, contact_ids: Sequence[int]) -> None:
    """SQLite: add contacts just inserted to the search table, in one statement. (A trigger
    per inserted row made imports 2.2 times slower: FTS5 writes its pending entries out at
    every trigger's statement; changes of address or name and deletions, rarer, are kept by
    triggers.) Contacts are inserted only by upsert.write_contacts, which calls this."""
    if not contact_ids or not dialect_of(session).is_sqlite:
        return
    c = Contact.__table__.c
    rows = select(c.id, c.email, c.first_name, c.last_name).where(c.id.in_(contact_ids))
    columns = ["rowid", "email", "first_name", "last_name"]
    session.execute(insert(_search).from_select(columns, rows))


def containing(session: Session, text: str) -> ColumnElement[bool]:
    """Contacts whose address, first name or last name contains `text`, ignoring case."""
    lowered = text.lower()
    if dialect_of(session).is_sqlite and len(lowered) >= TRIGRAM:
        phrase = '"' + lowered.replace('"', '""') + '"'  # the whole text, literally
        matches = select(_search.c.rowid).where(_search.c[SEARCH_TABLE].op("MATCH")(phrase))
        return Contact.id.in_(matches)
    return scanning(text)


def scanning(text: str) -> ColumnElement[bool]:
    """The same condition as `LIKE`s, which no index serves: for a few rows already found."""
    lowered = text.lower()
    pattern = "%" + lowered.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
    return or_(
        Contact.email.like(pattern, escape="/"),  # stored lower-cased
        func.lower(Contact.first_name).like(pattern, escape="/"),
        func.lower(Contact.last_name).like(pattern, escape="/"),
    )


def newest_matching(
    session: Session, query: Select[Any], text: str, *, limit: int, before: int | None = None
) -> list[Contact]:
    """The `limit` newest contacts of `query` (a SELECT of contacts) containing `text`, with
    ids below `before`.

    Neither way alone holds at 1,000,000 contacts: walking the newest contacts until enough
    match is quick for a text most contacts have (an address's domain), but read 870,000
    rows (1 s) for one whose matches are all old; the index finds those at once, but 1,000,000
    matches then take 0.5 s to sort. So: the newest WINDOW contacts are looked through first,
    and only if fewer than `limit` of them match does the index answer."""
    top = before if before is not None else (session.scalar(select(func.max(Contact.id))) or 0) + 1
    recent = query.where(scanning(text), Contact.id < top, Contact.id >= top - WINDOW)
    rows = list(session.scalars(recent.order_by(Contact.id.desc()).limit(limit)))
    if len(rows) == limit or top <= WINDOW + 1:
        return rows
    # `id + 0`: an order no index gives, so PostgreSQL finds the matches through the trigram
    # index and sorts them instead of walking the primary key back from the newest.
    indexed = query.where(containing(session, text), Contact.id < top)
    return list(session.scalars(indexed.order_by((Contact.id + 0).desc()).limit(limit)))
