"""Local email for development: `tidings serve --dev-smtp` starts an SMTP sink (aiosmtpd) that
keeps the last messages in memory, points the sender at it, and shows them at /dev/mailbox.
Also: the in-process sender thread that `tidings serve` runs when TIDINGS_SMTP_URL is set."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.controller import Controller

from tidings.clock import Clock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.events.tokens import TrackingTokens
from tidings.messaging.sender import Sender, SenderOptions, run_sender

log = logging.getLogger(__name__)
MAILBOX_SIZE = 500


@dataclass(frozen=True, slots=True)
class StoredMessage:
    number: int
    received_at: datetime
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    def header(self, name: str) -> str:
        message = email.message_from_bytes(self.data, policy=email.policy.default)
        return str(message.get(name, ""))

    def html(self) -> str | None:
        message = email.message_from_bytes(self.data, policy=email.policy.default)
        body = message.get_body(("html",)) if hasattr(message, "get_body") else None
        return None if body is None else str(body.get_content())


class DevMailbox:
    """The aiosmtpd handler: accepts everything, keeps the newest MAILBOX_SIZE messages."""

    def __init__(self, size: int = MAILBOX_SIZE) -> None:
        self.messages: deque[StoredMessage] = deque(maxlen=size)
        self.count = 0
        self.lock = threading.Lock()
        self.arrived = threading.Event()  # set on each message (tests wait on it)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
            self.messages.append(
                StoredMessage(
                    self.count,
                    datetime.now(UTC),
                    str(envelope.mail_from),
                    tuple(envelope.rcpt_tos),
                    envelope.original_content or b"",
                )
            )
        self.arrived.set()
        return "250 OK"

    def get(self, number: int) -> StoredMessage | None:
        with self.lock:
            return next((m for m in self.messages if m.number == number), None)

    def newest_first(self) -> list[StoredMessage]:
        with self.lock:
            return list(reversed(self.messages))


class SenderThread:
    """Runs the outbox sender in a background thread with its own event loop."""

    def __init__(self, database: Database, clock: Clock, settings: Settings) -> None:
        options = SenderOptions.from_settings(settings, database)
        tokens = TrackingTokens.from_settings(settings, database, clock)
        self.sender = Sender(database, clock, options, tokens=tokens)
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="tidings-sender", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self.stop_event = asyncio.Event()
            try:
                await self.sender.run_forever(poll_seconds=1.0, stop=self.stop_event)
            finally:
                await self.sender.close()

        try:
            self.loop.run_until_complete(main())
        except Exception:
            log.exception("the email sender stopped")

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=10)


def start_sender(database: Database, clock: Clock, settings: Settings) -> SenderThread | None:
    """For `tidings worker`: the outbox sender in a background thread when an SMTP URL is
    configured, else None."""
    if not settings.smtp_url:
        return None
    sender = SenderThread(database, clock, settings)
    sender.start()
    return sender


def send_until_idle(database: Database, clock: Clock, settings: Settings) -> int | None:
    """For `tidings worker --once`: send what is due, then return the number sent (None when
    no SMTP URL is configured)."""
    if not settings.smtp_url:
        return None
    tokens = TrackingTokens.from_settings(settings, database, clock)
    options = SenderOptions.from_settings(settings, database)
    stats = run_sender(database, clock, options, tokens=tokens)
    return stats.sent


@dataclass
class EmailServices:
    sender: SenderThread | None
    sink: Controller | None

    def stop(self) -> None:
        if self.sender is not None:
            self.sender.stop()
        if self.sink is not None:
            self.sink.stop()


def start_email_services(
    app: Any,
    settings: Settings,
    database: Database,
    clock: Clock,
    *,
    dev_smtp: bool,
    dev_smtp_port: int = 1025,
) -> EmailServices:
    """For `tidings serve`: the dev sink (when asked) and the in-process sender (when an SMTP
    URL is configured or the dev sink runs)."""
    sink = None
    if dev_smtp:
        mailbox = DevMailbox()
        sink = Controller(mailbox, hostname="127.0.0.1", port=dev_smtp_port)
        sink.start()
        app.state.dev_mailbox = mailbox
        settings = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{dev_smtp_port}"})
        log.warning("dev SMTP sink on 127.0.0.1:%s; messages at /dev/mailbox", dev_smtp_port)
    sender = None
    if settings.smtp_url:
        sender = SenderThread(database, clock, settings)
        sender.start()
    return EmailServices(sender, sink)
