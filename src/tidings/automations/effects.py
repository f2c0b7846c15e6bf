"""Delivery of outbound effects (webhooks; internal notifications) after commit, with retries.

A row is claimed by pushing its next attempt into the future (a lease) and committing; the
call happens outside any transaction; the outcome is written afterwards. A crash between the
call and the outcome means one more call later, with the same `Idempotency-Key` header, so
receivers can drop the repeat (at-least-once delivery, the best an HTTP call can offer).
Webhook calls go through `tidings.webhooks.http.safe_post` (one resolution, public addresses
only, connected to as checked); an effect that fails the same way every time (a 4xx, an address
refused, a notification that cannot be built) is marked failed at once, not retried.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, update

from tidings.automations.models import Effect
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

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BASE_DELAY = timedelta(seconds=30)
LEASE = timedelta(minutes=2)


def deliver_due(
    database: Database,
    clock: Clock,
    settings: Settings,
    *,
    resolver: Resolver = system_resolver,
    verify: ssl.SSLContext | None = None,
    limit: int = 50,
) -> int:
    """Send the effects that are due; returns how many were attempted."""
    now = clock.now()
    with database.session() as session:
        statement = (
            select(Effect.id, Effect.kind, Effect.target, Effect.payload, Effect.idempotency_key)
            .where(Effect.status == "pending", Effect.next_attempt_at <= now)
            .order_by(Effect.next_attempt_at)
            .limit(limit)
        )
        statement = database.dialect.claim(statement)
        rows = session.execute(statement).all()
        if not rows:
            return 0
        session.execute(
            update(Effect)
            .where(Effect.id.in_([r.id for r in rows]))
            .values(next_attempt_at=now + LEASE, attempts=Effect.attempts + 1, updated_at=now)
        )
    for row in rows:
        error, final = _attempt(row, settings, resolver, verify)
        _settle(database, clock, row.id, error, final)
    return len(rows)


def _attempt(
    row: Any, settings: Settings, resolver: Resolver, verify: ssl.SSLContext | None
) -> tuple[str | None, bool]:
    """(error or None, whether the error is final)."""
    try:
        if row.kind == "webhook":
            response = safe_post(
                row.target,
                json=row.payload,
                headers={"Idempotency-Key": row.idempotency_key},
                allow_private=settings.webhook_allow_private,
                resolver=resolver,
                verify=verify,
            )
            delivery = classify(response.status_code)
            if delivery is Delivery.SENT:
                return None, False
            error = f"HTTP {response.status_code}"
            if response.is_redirect:
                error += f" (a redirect to {response.headers.get('location')!r} is not followed)"
            return error, delivery is Delivery.FAILED
        return _notify(row, settings)
    except UnsafeAddress as exc:
        return f"refused: {exc}", True
    except smtplib.SMTPResponseException as exc:  # a 5xx answer will be the same next time
        return f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", exc.smtp_code >= 500
    except smtplib.SMTPRecipientsRefused as exc:
        return f"recipient refused: {exc.recipients}", True
    except (httpx.HTTPError, OSError, smtplib.SMTPException) as exc:
        return f"{type(exc).__name__}: {exc}", False
    except Exception as exc:
        # Anything else is in the effect itself (a subject with a line break, a body that is
        # not JSON): it fails the same way every time, so it is recorded, not retried.
        log.exception("effect %s failed permanently", row.id)
        return f"{type(exc).__name__}: {exc}", True


def _notify(row: Any, settings: Settings) -> tuple[str | None, bool]:
    if not settings.smtp_url:
        return "no SMTP server configured (TIDINGS_SMTP_URL)", False
    parts = urlsplit(settings.smtp_url)
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = row.target
    message["Subject"] = str(row.payload.get("subject", "Tidings notification"))
    contact = row.payload.get("contact") or {}
    about = f"\n\nContact: {contact.get('email')}" if contact else ""  # system runs: none
    message.set_content(f"{row.payload.get('body', '')}{about}\n")
    with smtplib.SMTP(parts.hostname or "localhost", parts.port or 25, timeout=30) as smtp:
        smtp.send_message(message)
    return None, False


def _settle(
    database: Database, clock: Clock, effect_id: int, error: str | None, final: bool
) -> None:
    now = clock.now()
    with database.session() as session:
        effect = session.get(Effect, effect_id)
        if effect is None:
            return
        effect.updated_at = now
        if error is None:
            effect.status, effect.last_error = "sent", None
        elif final or effect.attempts >= MAX_ATTEMPTS:
            effect.status = "refused" if error.startswith("refused") else "failed"
            effect.last_error = error
        else:
            effect.last_error = error
            effect.next_attempt_at = now + backoff(effect.attempts, BASE_DELAY)
