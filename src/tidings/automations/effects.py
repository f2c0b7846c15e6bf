"""Delivery of outbound effects (webhooks; internal notifications) after commit, with retries.

A row is claimed by pushing its next attempt into the future (a lease) and committing; the
call happens outside any transaction; the outcome is written afterwards. A crash between the
call and the outcome means one more call later, with the same `Idempotency-Key` header, so
receivers can drop the repeat (at-least-once delivery, the best an HTTP call can offer).
"""

from __future__ import annotations

import ipaddress
import logging
import smtplib
import socket
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

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BASE_DELAY = timedelta(seconds=30)
LEASE = timedelta(minutes=2)
TIMEOUT_SECONDS = 10.0


class UnsafeAddress(Exception):
    pass


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse URLs whose host resolves to a private, loopback, link-local or reserved address.

    (Server-side request forgery: an automation author must not reach internal services.)
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeAddress(f"{url!r} is not an http(s) URL")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeAddress(f"{parts.hostname}: cannot resolve ({exc})") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
        ):
            raise UnsafeAddress(
                f"{parts.hostname} resolves to {address}, a private address "
                "(set TIDINGS_WEBHOOK_ALLOW_PRIVATE=true to allow)"
            )


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=BASE_DELAY.total_seconds() * 2 ** max(attempts - 1, 0))


def deliver_due(
    database: Database,
    clock: Clock,
    settings: Settings,
    *,
    client: httpx.Client | None = None,
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
        if not database.is_sqlite:
            statement = statement.with_for_update(skip_locked=True)
        rows = session.execute(statement).all()
        if not rows:
            return 0
        session.execute(
            update(Effect)
            .where(Effect.id.in_([r.id for r in rows]))
            .values(next_attempt_at=now + LEASE, attempts=Effect.attempts + 1, updated_at=now)
        )
    own = client is None
    http = client or httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)
    try:
        for row in rows:
            error, final = _attempt(row, settings, http)
            _settle(database, clock, row.id, error, final)
    finally:
        if own:
            http.close()
    return len(rows)


def _attempt(row: Any, settings: Settings, http: httpx.Client) -> tuple[str | None, bool]:
    """(error or None, whether the error is final)."""
    try:
        if row.kind == "webhook":
            check_url(row.target, allow_private=settings.webhook_allow_private)
            response = http.post(
                row.target, json=row.payload, headers={"Idempotency-Key": row.idempotency_key}
            )
            if response.status_code >= 500 or response.status_code == 429:
                return f"HTTP {response.status_code}", False
            if response.status_code >= 400:
                return f"HTTP {response.status_code}", True
            return None, False
        return _notify(row, settings)
    except UnsafeAddress as exc:
        return f"refused: {exc}", True
    except (httpx.HTTPError, OSError, smtplib.SMTPException) as exc:
        return f"{type(exc).__name__}: {exc}", False


def _notify(row: Any, settings: Settings) -> tuple[str | None, bool]:
    if not settings.smtp_url:
        return "no SMTP server configured (TIDINGS_SMTP_URL)", False
    parts = urlsplit(settings.smtp_url)
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = row.target
    message["Subject"] = str(row.payload.get("subject", "Tidings notification"))
    contact = row.payload.get("contact") or {}
    message.set_content(f"{row.payload.get('body', '')}\n\nContact: {contact.get('email')}\n")
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
            effect.next_attempt_at = now + backoff(effect.attempts)
