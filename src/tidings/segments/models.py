"""Saved segments: a named condition, evaluated when used (never a stored member list)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base
from tidings.db.types import BigIntPK, JSONType, UTCDateTime


class Segment(Base):
    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    condition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
