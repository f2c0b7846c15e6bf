"""The sender's options: where and how to deliver, and how hard to try (from the settings)."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from email.utils import parseaddr
from typing import Any

from tidings.auth.signing import signing_keys
from tidings.config import DEFAULT_DESTINATION, Settings, destination_domains
from tidings.db.engine import Database
from tidings.messaging.destinations import Destination, named_destinations
from tidings.messaging.dkim import DkimSigner, signer_from_settings
from tidings.messaging.transport import SmtpConfig, parse_smtp_url


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def default_helo(from_domain: str, fqdn: str | None = None) -> str:
    """The EHLO name when TIDINGS_SMTP_HELO is not set: the machine's fully qualified name,
    or the From domain when the machine has none (`localhost`, a bare `vm`, `x.localdomain`):
    receivers that require an FQDN refuse those."""
    name = (fqdn if fqdn is not None else socket.getfqdn()).rstrip(".").lower()
    qualified = "." in name and not name.startswith("localhost")
    if qualified and not name.endswith((".localdomain", ".local", ".localhost")):
        return name
    return from_domain.lower() or "localhost"


@dataclass
class SenderOptions:
    mail_from: str
    base_url: str
    secret: str | Sequence[str]  # one key, or the keys oldest first (the last signs)
    smtp: SmtpConfig
    bounce_domain: str | None = None
    unsubscribe_mailto: str | None = None
    dkim: DkimSigner | None = None
    dkim_domain_selector: tuple[str, str] | None = None  # internal: rebuilds dkim in workers
    connections: int = 4  # of the default destination (every domain not named below)
    # Recipient domains with connections of their own (messaging/destinations.py).
    destinations: tuple[Destination, ...] = ()
    batch_size: int = 500
    lease: timedelta = timedelta(minutes=5)
    max_attempts: int = 8
    retry_base: timedelta = timedelta(seconds=60)
    rate_per_second: float | None = None
    domain_rate_per_second: float | None = None
    worker_id: str = field(default_factory=default_worker_id)
    # 0: render and sign in a thread pool; N: in N worker processes (for machines with spare
    # cores; the workers make their own tracking tokens with the system clock).
    compose_processes: int = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, database: Database, **overrides: Any
    ) -> SenderOptions:
        if not settings.smtp_url:
            raise ValueError("TIDINGS_SMTP_URL is not set")
        from_domain = parseaddr(settings.mail_from)[1].rpartition("@")[2]
        connections, per_connection = (
            settings.smtp_connections,
            settings.smtp_messages_per_connection,
        )
        default = next(
            (
                limits
                for key, limits in settings.smtp_destinations.items()
                if destination_domains(key) == [DEFAULT_DESTINATION]
            ),
            None,
        )
        if default is not None:  # a "*" entry: the default destination's own limits
            connections = default.connections
            if default.messages_per_connection is not None:
                per_connection = default.messages_per_connection
        values: dict[str, Any] = {
            "mail_from": settings.mail_from,
            "base_url": settings.base_url,
            "secret": signing_keys(settings, database),
            "smtp": replace(
                parse_smtp_url(settings.smtp_url, timeout=settings.smtp_timeout_seconds),
                helo=settings.smtp_helo or default_helo(from_domain),
                messages_per_connection=per_connection,
            ),
            "destinations": named_destinations(
                settings.smtp_destinations, settings.smtp_messages_per_connection
            ),
            "bounce_domain": settings.bounce_domain,
            "unsubscribe_mailto": settings.unsubscribe_mailto,
            "dkim": signer_from_settings(
                domain=settings.dkim_domain or from_domain,
                selector=settings.dkim_selector,
                pem=settings.dkim_private_key,
                pem_file=settings.dkim_private_key_file,
            ),
            "connections": connections,
            "max_attempts": settings.smtp_max_attempts,
            "retry_base": timedelta(seconds=settings.smtp_retry_base_seconds),
            "rate_per_second": settings.smtp_rate_per_second,
            "domain_rate_per_second": settings.smtp_domain_rate_per_second,
            "compose_processes": settings.smtp_compose_processes,
        }
        values.update(overrides)
        return cls(**values)
