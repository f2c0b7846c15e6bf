"""API shapes for templates, transactional messages, broadcasts and bounces."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from tidings.api.schemas import Id, InputModel


class Strict(InputModel):
    pass


class TemplateIn(Strict):
    name: str = Field(max_length=200)
    subject: str = Field(max_length=2000)
    html: str = Field(max_length=1_000_000)
    text: str | None = Field(default=None, max_length=1_000_000)
    variables: dict[str, Any] = Field(default_factory=dict)
    track_opens: bool = True
    track_clicks: bool = True


class TemplatePatch(Strict):
    name: str | None = Field(default=None, max_length=200)
    subject: str | None = Field(default=None, max_length=2000)
    html: str | None = Field(default=None, max_length=1_000_000)
    text: str | None = Field(default=None, max_length=1_000_000)
    variables: dict[str, Any] | None = None
    track_opens: bool | None = None
    track_clicks: bool | None = None


class TemplateOut(BaseModel):
    id: int
    name: str
    subject: str
    html: str
    text: str | None
    variables: dict[str, Any]
    track_opens: bool
    track_clicks: bool
    created_at: datetime
    updated_at: datetime


class PreviewIn(Strict):
    contact_id: Id
    data: dict[str, Any] = Field(default_factory=dict)


class PreviewOut(BaseModel):
    subject: str
    html: str
    text: str | None


class TransactionalIn(Strict):
    template: str = Field(description="template name")
    contact_id: Id | None = None
    email: str | None = Field(default=None, description="instead of contact_id")
    data: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, max_length=200)


class QueueOut(BaseModel):
    queued: bool
    reason: str
    outbox_id: int | None
    duplicate: bool


class MessageOut(BaseModel):
    id: int
    contact_id: int
    recipient: str | None
    message_class: str
    template_id: int | None
    broadcast_id: int | None
    status: str
    reason: str | None
    attempts: int
    created_at: datetime
    sent_at: datetime | None


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class BroadcastIn(Strict):
    name: str = Field(max_length=200)
    template_id: Id
    list_id: Id | None = None
    segment_id: Id | None = None
    segment: Any | None = Field(default=None, description="a segment condition (JSON)")
    scheduled_at: AwareDatetime | None = Field(
        default=None, description="with a timezone, e.g. 2026-05-01T09:00:00Z; default: now"
    )


class BroadcastOut(BaseModel):
    id: int
    name: str
    template_id: int
    list_id: int | None
    segment: Any | None
    status: str
    scheduled_at: datetime
    queued_at: datetime | None
    recipients: int
    created_at: datetime
    stats: dict[str, int]


class RecipientOut(BaseModel):
    contact_id: int
    email: str | None


class RefusalOut(BaseModel):
    reason: str
    count: int
    recipients: list[RecipientOut] = Field(description="the first few, in queueing order")


class LinkClicksOut(BaseModel):
    url: str
    clickers: int = Field(description="people who clicked it")
    clicks: int = Field(description="their clicks")
    machine_clicks: int = Field(description="link scanners' and proxies' (not in clicks)")


class TimelineOut(BaseModel):
    bucket: str = Field(description="hour, day or week")
    starts: list[datetime] = Field(description="each bucket's start (UTC)")
    series: dict[str, list[int]] = Field(
        description="delivered, opened, clicked, bounced, complained, unsubscribed per bucket"
    )


class BroadcastReportOut(BaseModel):
    broadcast_id: int
    totals: dict[str, int]
    rates: dict[str, float | None]
    timeline: TimelineOut
    last_sent_at: datetime | None
    links: list[LinkClicksOut]
    refusals: list[RefusalOut]


class OptInIn(Strict):
    email: str = Field(max_length=320)
    list_id: Id
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)


class OptInOut(BaseModel):
    contact_id: int
    status: str
    confirmation: QueueOut | None
