"""Delivering webhooks: claim due deliveries with a lease, POST them outside any transaction
through `safe_post` (one resolution, public addresses only unless allowed), record the outcome.

- Native ("json"): the JSON body, signed: `X-Tidings-Signature: sha256=<hex>` is
  HMAC-SHA256(secret, "<X-Tidings-Timestamp>." + body), so a receiver can check both the
  sender and the freshness; `X-Tidings-Event`, `X-Tidings-Delivery` and `Idempotency-Key`
  name the delivery (a crash between the call and its record means one more call later with
  the same key: at-least-once).
- ActiveCampaign: form-encoded, as ActiveCampaign posts.

A 2xx is delivered; 3xx, 408, 429, 5xx and network errors are retried with backoff up to
MAX_ATTEMPTS; other 4xx and refused addresses fail at once. HTTP 410 Gone disables the
subscription (and drops what it still had to deliver); MAX_FAILURES deliveries failing for
good in a row disable it too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import ssl
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import select, update

from tidings.clock import Clock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.retry import backoff
from tidings.webhooks.http import (
    Delivery,
    Resolver,
    UnsafeAddress,
    classify,
    safe_post,
    system_resolver,
)
from tidings.webhooks.models import WebhookDelivery, WebhookSubscription
from tidings.webhooks.service import disable

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
MAX_FAILURES = 5
BASE_DELAY = timedelta(seconds=30)
LEASE = timedelta(minutes=2)
GONE = 410


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def request_of(row: Any, now: datetime) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery."""
    headers = {"Idempotency-Key": f"webhook-{row.id}", "User-Agent": "Tidings-Webhooks"}
    if row.format == "activecampaign":
        body = urlencode(row.payload).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return body, headers
    body = json.dumps(row.payload, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = str(int(now.timestamp()))
    headers.update(
        {
            "Content-Type": "application/json",
            "X-Tidings-Event": row.event,
            "X-Tidings-Delivery": str(row.id),
            "X-Tidings-Timestamp": timestamp,
            "X-Tidings-Signature": signature(row.secret, timestamp, body),
        }
    )
    return body, headers


def deliver_due(
    database: Database,
    clock: Clock,
    settings: Settings,
    *,
    resolver: Resolver = system_resolver,
    verify: ssl.SSLContext | None = None,
    limit: int = 50,
) -> int:
    """Send the deliveries that are due; returns how many were attempted."""
    now = clock.now()
    with database.session() as session:
        statement = (
            select(
                WebhookDelivery.id,
                WebhookDelivery.subscription_id,
                WebhookDelivery.event,
                WebhookDelivery.payload,
                WebhookSubscription.url,
                WebhookSubscription.format,
                WebhookSubscription.secret,
            )
            .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
        )
        statement = database.dialect.claim(statement, of=WebhookDelivery)
        rows = session.execute(statement).all()
        if not rows:
            return 0
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_([r.id for r in rows]))
            .values(
                next_attempt_at=now + LEASE,
                attempts=WebhookDelivery.attempts + 1,
                updated_at=now,
            )
        )
    disabled: set[int] = set()
    for row in rows:
        if row.subscription_id in disabled:
            continue  # turned off by an earlier answer of this batch: its rows were dropped
        status, error = _attempt(row, settings, resolver, verify, now)
        if _settle(database, clock, row, status, error):
            disabled.add(row.subscription_id)
    return len(rows)


def _attempt(
    row: Any, settings: Settings, resolver: Resolver, verify: ssl.SSLContext | None, now: datetime
) -> tuple[int | None, str | None]:
    """(HTTP status or None, error or None)."""
    body, headers = request_of(row, now)
    try:
        response = safe_post(
            row.url,
            content=body,
            headers=headers,
            allow_private=settings.webhook_allow_private,
            resolver=resolver,
            verify=verify,
        )
    except UnsafeAddress as exc:
        return None, f"refused: {exc}"
    except (httpx.HTTPError, OSError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if classify(response.status_code) is Delivery.SENT:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}"


def _settle(
    database: Database, clock: Clock, row: Any, status: int | None, error: str | None
) -> bool:
    """Record the outcome; True when it disabled the subscription."""
    now = clock.now()
    with database.session() as session:
        delivery = session.get(WebhookDelivery, row.id)
        subscription = session.get(WebhookSubscription, row.subscription_id)
        if delivery is None or subscription is None:
            return False
        delivery.updated_at = now
        if error is None:
            delivery.status, delivery.last_error = "sent", None
            subscription.failures = 0
            return False
        delivery.last_error = error
        if status == GONE:
            delivery.status = "failed"
            session.flush()
            disable(session, subscription.id, "the receiver answered 410 Gone", now)
            return True
        final = error.startswith("refused") or (
            status is not None and classify(status) is Delivery.FAILED
        )
        if not final and delivery.attempts < MAX_ATTEMPTS:
            delivery.next_attempt_at = now + backoff(delivery.attempts, BASE_DELAY)
            return False
        delivery.status = "failed"
        subscription.failures += 1
        if subscription.failures < MAX_FAILURES:
            return False
        session.flush()
        reason = f"{subscription.failures} deliveries failed in a row"
        disable(session, subscription.id, reason, now)
        return True
