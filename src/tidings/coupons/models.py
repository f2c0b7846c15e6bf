"""The tables of coupon pools: a pool (its low-stock threshold, the shortage seen) and its
codes; a code is free until a contact holds it (one code per contact per pool)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base
from tidings.db.types import BigIntPK, UTCDateTime


class CouponPool(Base):
    __tablename__ = "coupon_pools"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    low_stock: Mapped[int] = mapped_column(Integer, default=0)
    # Contacts that asked when the pool was empty (the shortage to refill).
    shortage: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Told once (a notify effect) when the free codes fall to low_stock; when that happened.
    low_stock_notify: Mapped[str | None] = mapped_column(String(320))
    low_stock_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CouponCode(Base):
    __tablename__ = "coupon_codes"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    pool_id: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(200))
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("pool_id", "code", name="uq_coupon_codes_pool_code"),
        UniqueConstraint("pool_id", "contact_id", name="uq_coupon_codes_pool_contact"),
        Index("ix_coupon_codes_free", "pool_id", "contact_id", "id"),
    )
