"""The tables of system automations: one tick row per schedule tick or finished event (its
unique key makes a start exactly-once across workers) and one run row per start."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base
from tidings.db.types import BigIntPK, JSONType, UTCDateTime


class SystemTick(Base):
    """`schedule:<automation>:<tick time>` or `event:<automation>:<activity id>`; status
    started (a run was made) or skipped (a missed tick with catch_up: skip, a filter)."""

    __tablename__ = "system_ticks"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    automation_id: Mapped[int] = mapped_column(BigInteger)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_system_ticks_automation_due", "automation_id", "due_at"),)


class SystemRun(Base):
    """A run: its step, when it wakes (a wait), the last job's outcome and a log of steps."""

    __tablename__ = "system_runs"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    automation_id: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer)
    tick_key: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(16))  # ready | waiting | done | failed
    step: Mapped[str | None] = mapped_column(String(100))
    wake_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_job: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    log: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_system_runs_state_wake", "state", "wake_at"),
        # An automation's runs newest first (its page, `GET /system/runs?automation=`) and its
        # last run; its runs per state (the jobs page) from the index alone.
        Index("ix_system_runs_automation_id", "automation_id", "id"),
        Index("ix_system_runs_automation_state", "automation_id", "state"),
    )
