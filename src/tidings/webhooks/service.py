"""Webhook subscriptions: create, change, delete; each checked before it is stored (an http(s)
URL, known events). Services never commit."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tidings.errors import NotFound, ValidationFailed, field_error
from tidings.text import refuse_control_characters
from tidings.webhooks.events import AC_EVENTS, AC_SOURCES, is_native_event
from tidings.webhooks.models import WebhookDelivery, WebhookSubscription

FORMATS = ("json", "activecampaign")
MAX_EVENTS = 100


@dataclass(slots=True)
class SubscriptionInput:
    """Only the names in `given` are set (a change may give some)."""

    given: set[str] = field(default_factory=set)
    name: str | None = None
    url: str | None = None
    events: list[str] | None = None
    sources: list[str] | None = None
    list_id: int | None = None
    active: bool | None = None


def check_url(url: str, name: str = "url") -> str:
    text = url.strip()
    refuse_control_characters(name, text)
    try:
        parts = urlsplit(text)
    except ValueError:
        raise field_error(name, "not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise field_error(name, "must be an http:// or https:// URL")
    if len(text) > 2000:
        raise field_error(name, "at most 2000 characters")
    return text


def check_events(format_: str, events: Sequence[str], name: str = "events") -> list[str]:
    if not events:
        raise field_error(name, "choose at least one event")
    if len(events) > MAX_EVENTS:
        raise field_error(name, f"at most {MAX_EVENTS} events")
    unique = list(dict.fromkeys(e.strip() for e in events))
    for index, event in enumerate(unique):
        known = event in AC_EVENTS if format_ == "activecampaign" else is_native_event(event)
        if not known:
            hint = (
                "see GET /api/3/webhooks/events"
                if format_ == "activecampaign"
                else ("see GET /api/v1/webhooks/events")
            )
            raise field_error(f"{name}[{index}]", f"{event!r} is not an event ({hint})")
    return unique


def check_sources(sources: Sequence[str] | None) -> list[str]:
    if not sources:
        return sorted(AC_SOURCES)
    for index, source in enumerate(sources):
        if source not in AC_SOURCES:
            raise field_error(
                f"sources[{index}]", f"must be one of {', '.join(sorted(AC_SOURCES))}"
            )
    return list(dict.fromkeys(sources))


def _name(raw: str | None, url: str) -> str:
    name = (raw or "").strip() or urlsplit(url).hostname or "webhook"
    refuse_control_characters("name", name)
    if len(name) > 200:
        raise field_error("name", "at most 200 characters")
    return name


def create_subscription(
    session: Session, item: SubscriptionInput, *, format_: str, now: datetime
) -> WebhookSubscription:
    if format_ not in FORMATS:
        raise ValidationFailed(f"format: must be one of {', '.join(FORMATS)}")
    if not item.url:
        raise field_error("url", "a webhook needs a URL")
    url = check_url(item.url)
    row = WebhookSubscription(
        name=_name(item.name, url),
        url=url,
        format=format_,
        events=check_events(format_, item.events or []),
        sources=check_sources(item.sources) if format_ == "activecampaign" else [],
        list_id=item.list_id or None,
        secret=secrets.token_urlsafe(32),
        active=True if item.active is None else item.active,
        failures=0,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get_subscription(
    session: Session, subscription_id: int, format_: str | None = None
) -> WebhookSubscription:
    row = session.get(WebhookSubscription, subscription_id)
    if row is None or (format_ is not None and row.format != format_):
        raise NotFound(f"webhook {subscription_id} does not exist")
    return row


def list_subscriptions(
    session: Session, format_: str | None = None
) -> Sequence[WebhookSubscription]:
    query = select(WebhookSubscription).order_by(WebhookSubscription.id)
    if format_ is not None:
        query = query.where(WebhookSubscription.format == format_)
    return session.scalars(query).all()


def update_subscription(
    session: Session, row: WebhookSubscription, item: SubscriptionInput, *, now: datetime
) -> WebhookSubscription:
    """Change what is given; turning a disabled subscription on again clears its failures."""
    if "url" in item.given and item.url is not None:
        row.url = check_url(item.url)
    if "name" in item.given and item.name is not None:
        row.name = _name(item.name, row.url)
    if "events" in item.given and item.events is not None:
        row.events = check_events(row.format, item.events)
    if "sources" in item.given and row.format == "activecampaign":
        row.sources = check_sources(item.sources)
    if "list_id" in item.given:
        row.list_id = item.list_id or None
    if "active" in item.given and item.active is not None:
        if item.active and not row.active:
            row.failures, row.disabled_reason = 0, None
        row.active = item.active
    row.updated_at = now
    session.flush()
    return row


def delete_subscription(session: Session, row: WebhookSubscription) -> None:
    session.delete(row)
    session.flush()


def disable(session: Session, subscription_id: int, reason: str, now: datetime) -> None:
    """Turn a subscription off and drop what it still had to deliver."""
    session.execute(
        update(WebhookSubscription)
        .where(WebhookSubscription.id == subscription_id)
        .values(active=False, disabled_reason=reason, updated_at=now)
    )
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.status == "pending"
        )
        .values(status="dropped", last_error=reason, updated_at=now)
    )


def recent_deliveries(
    session: Session, subscription_id: int, limit: int = 50
) -> Sequence[WebhookDelivery]:
    return session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    ).all()
