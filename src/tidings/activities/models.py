from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base
from tidings.db.types import BigIntPK, JSONType, UTCDateTime


class Activity(Base):
    """One fact about one contact (and, for a deal's changes, the deal). No foreign keys: a
    contact's or a deal's history outlives its deletion."""

    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64))
    cause: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Engagement events (issue 3, migration 0002): the caller's idempotency key, and whether an
    # open/click was made by a machine (privacy proxy, link scanner) rather than a person.
    event_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    machine: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Deals (issue 15): set on every deal_* activity; contact_id is then the deal's primary
    # contact, so the contact's timeline and contact triggers see it too.
    deal_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        # A contact's history, newest first (timeline, per-contact automation checks).
        Index("ix_activities_contact_id_id", "contact_id", "id"),
        # Segments ("opened in the last 7 days"), pruning and daily reports: see 0002_events.
        Index("ix_activities_type_occurred_at", "type", "occurred_at", "machine", "contact_id"),
        # A deal's timeline, newest first.
        Index("ix_activities_deal_id_id", "deal_id", "id"),
    )
