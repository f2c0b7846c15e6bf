from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base
from tidings.db.types import BigIntPK, JSONType, UTCDateTime


class Contact(Base):
    __tablename__ = "contacts"
    # Its id is in links (unsubscribe, preferences, tracking): SQLite must never hand out the
    # id of a deleted contact again (it reuses the largest rowid without AUTOINCREMENT).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # Normalised (trimmed, lower-cased) and syntax-checked; one contact per address.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), index=True)
    score: Mapped[int] = mapped_column(Integer, default=0)
    # Values of custom fields, keyed by the field's key, already coerced to the field's type.
    fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Engagement summary (issue 3, tidings.events.summary): kept current by every ingest with
    # relative UPDATEs; machine opens/clicks are not engagement and are not counted here.
    last_open_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_click_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_visit_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_engaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    open_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    click_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    purchase_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    visit_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Sum of purchase amounts in minor units (amount x 100, e.g. cents): exact integer sums.
    purchase_total_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ContactTag(Base):
    """A contact has a tag. No foreign keys, on purpose: this is the busiest join table (every
    tag step of every automation writes it), and PostgreSQL checks a key by locking the
    referenced contact AND tag row for each new row, a WAL record each and one hot tag row
    locked by every worker at once. Deleting a contact or a tag deletes its rows here
    (contacts.writes.delete_contacts, contacts.catalog.delete_tag); reads always join
    contacts and tags."""

    __tablename__ = "contact_tags"

    contact_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tag_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # "has tag X" in segments scans by tag.
    __table_args__ = (Index("ix_contact_tags_tag_id_contact_id", "tag_id", "contact_id"),)


class MailingList(Base):
    __tablename__ = "lists"
    __table_args__ = {"sqlite_autoincrement": True}  # its id is in unsubscribe links too

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ListMembership(Base):
    __tablename__ = "list_memberships"

    contact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    list_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
    )
    # active | unsubscribed (pending while a double opt-in is unconfirmed)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_list_memberships_list_id_status", "list_id", "status"),)


class CustomField(Base):
    __tablename__ = "custom_fields"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))
    options: Mapped[list[str] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Suppression(Base):
    """An address (`someone@example.com`) or a whole domain (`@example.com`) never to be mailed."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    value: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ContactStatusCount(Base):
    """How many contacts have each status, for the dashboard without counting 1,000,000 rows:
    kept by triggers on contacts (tidings.contacts.status_counts, migration 0027), as a ledger
    of changes summed on read — on SQLite one row per status, on PostgreSQL a row per writing
    statement too (rows are only added, so concurrent writers never wait on each other),
    folded back to one per status now and then."""

    __tablename__ = "contact_status_counts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    n: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_contact_status_counts_status_id", "status", "id"),)
