"""Webhook subscriptions and their deliveries (the durable queue). Only tidings.webhooks
writes these tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base
from tidings.db.types import BigIntPK, JSONType, UTCDateTime


class WebhookSubscription(Base):
    """Someone's URL that wants to hear about chosen activity types.

    `format` "json": Tidings' own, signed JSON (HMAC-SHA256 with `secret`); "activecampaign":
    form-encoded with PHP-style keys as ActiveCampaign posts them (`events` then holds
    ActiveCampaign's event names, `sources` and `list_id` its filters)."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2000))
    format: Mapped[str] = mapped_column(String(20))  # json | activecampaign
    events: Mapped[list[str]] = mapped_column(JSONType)
    sources: Mapped[list[str]] = mapped_column(JSONType, default=list)
    list_id: Mapped[int | None] = mapped_column(BigInteger)
    secret: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Deliveries that failed for good in a row (a success resets it); too many disable it.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """One activity to deliver to one subscription, with its body built when the activity was
    seen (the contact may be gone by the time it is sent). Claimed with a lease, retried
    with backoff; the unique key makes dispatching an activity twice a no-op."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    activity_id: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(20))  # pending | sent | failed | dropped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("subscription_id", "activity_id"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )


class WebhookState(Base):
    """Small named values of the dispatcher (its activity cursor)."""

    __tablename__ = "webhook_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSONType)
