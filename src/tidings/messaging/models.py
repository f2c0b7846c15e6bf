"""Email templates, the outbox (the only way out) and broadcasts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base
from tidings.db.types import BigIntPK, JSONType, UTCDateTime


class EmailTemplate(Base):
    __tablename__ = "email_templates"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    subject: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    # Names the template may use besides `contact` (given by the caller at send time), each
    # with an example value used for validation and preview.
    variables: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    track_opens: Mapped[bool] = mapped_column(Boolean, default=True)
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Broadcast(Base):
    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    template_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("email_templates.id", ondelete="RESTRICT")
    )
    list_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("lists.id", ondelete="SET NULL")
    )
    segment: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # scheduled -> sending (recipients queued) -> sent (outbox drained) | cancelled
    status: Mapped[str] = mapped_column(String(20), index=True)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxMessage(Base):
    """One message to one contact. Written in the transaction that decides to send it.

    status: queued -> sending (claimed, lease) -> delivering (committed just before the final
    dot of DATA) -> sent; or deferred (4xx, retried), failed (5xx), refused (policy said no, at
    queue or send time). After sending: bounced, complained, unsubscribed.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    # No foreign key: the record of what was sent outlives the contact.
    contact_id: Mapped[int] = mapped_column(BigInteger, index=True)
    template_id: Mapped[int | None] = mapped_column(BigInteger)
    broadcast_id: Mapped[int | None] = mapped_column(BigInteger)
    message_class: Mapped[str] = mapped_column(String(32))
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The Message-ID header (without <>), fixed at queue time so a resend keeps it.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    recipient: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # The sender's claim query: due rows by status and time.
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_broadcast_id_status", "broadcast_id", "status"),
    )
