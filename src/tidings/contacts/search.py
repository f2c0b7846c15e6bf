"""Search contacts by any part of their address or name, in any case, through an index.

The index is the trigram index of migration 0027 (tidings.db.extras): on PostgreSQL, GIN
indexes that serve the `LIKE` below; on SQLite, an FTS5 trigram table asked with MATCH, which
finds a text of three characters or more (shorter ones, which match too much for an index to
help, are the `LIKE` scan). `%` and `_` are searched as themselves.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, column, func, or_, select, table
from sqlalchemy.orm import Session

from tidings.contacts.models import Contact
from tidings.db.dialect import dialect_of
from tidings.db.extras import SEARCH_TABLE

TRIGRAM = 3  # the shortest text the trigram table can find
_search = table(SEARCH_TABLE, column("rowid"), column(SEARCH_TABLE))


def containing(session: Session, text: str) -> ColumnElement[bool]:
    """Contacts whose address, first name or last name contains `text`, ignoring case."""
    lowered = text.lower()
    if dialect_of(session).is_sqlite and len(lowered) >= TRIGRAM:
        phrase = '"' + lowered.replace('"', '""') + '"'  # the whole text, literally
        matches = select(_search.c.rowid).where(_search.c[SEARCH_TABLE].op("MATCH")(phrase))
        return Contact.id.in_(matches)
    pattern = "%" + lowered.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
    return or_(
        Contact.email.like(pattern, escape="/"),  # stored lower-cased
        func.lower(Contact.first_name).like(pattern, escape="/"),
        func.lower(Contact.last_name).like(pattern, escape="/"),
    )
