"""Per-day event aggregates: what reports read, kept exact when raw events are pruned."""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base


class EventDaily(Base):
    """Events per UTC day and type, counted as they are ingested (never recomputed from raw)."""

    __tablename__ = "event_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    type: Mapped[str] = mapped_column(String(64), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    machine_events: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
