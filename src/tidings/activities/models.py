from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base
from tidings.db.types import BigIntPK, JSONType, UTCDateTime


class Activity(Base):
    """One fact about one contact. No foreign key: a contact's history outlives its deletion."""

    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64))
    cause: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        # A contact's history, newest first (timeline, per-contact automation checks).
        Index("ix_activities_contact_id_id", "contact_id", "id"),
    )
