"""A real SMTP server on loopback (aiosmtpd) that records what it receives, and sender setup."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.messaging.dkim import DkimSigner, generate_key
from tidings.messaging.sender import SenderOptions
from tidings.messaging.transport import SmtpConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SinkHandler:
    messages: list[Received] = field(default_factory=list)
    # address -> list of replies to give at RCPT, one per attempt ("250" when exhausted)
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    data_replies: dict[str, list[str]] = field(default_factory=dict)
    # drop the connection during DATA for these addresses (once each)
    drop_during_data: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_message: Any = None
    # Announce PIPELINING (aiosmtpd reads pipelined commands but does not announce it).
    pipelining: bool = False
    helo_names: list[str] = field(default_factory=list)  # the name of every EHLO, in order

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        self.helo_names.append(hostname)
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        replies = self.rcpt_replies.get(address)
        if replies:
            return replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rcpt = envelope.rcpt_tos[0]
        if rcpt in self.drop_during_data:
            self.drop_during_data.discard(rcpt)
            assert server.transport is not None
            server.transport.close()
            return "421 closing"
        replies = self.data_replies.get(rcpt)
        if replies:
            return replies.pop(0)
        data = envelope.original_content or b""
        with self.lock:
            self.messages.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), data))
        if self.on_message is not None:
            self.on_message(self)
        return "250 Message accepted"

    def count_by_recipient(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self.lock:
            for m in self.messages:
                for r in m.rcpt_tos:
                    counts[r] = counts.get(r, 0) + 1
        return counts


@dataclass
class Sink:
    handler: SinkHandler
    port: int

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@pytest.fixture
def sink() -> Iterator[Sink]:
    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Sink(handler, port)
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def dkim_key() -> bytes:
    return generate_key(1024)  # a short key keeps the test fast; production default is 2048


@pytest.fixture
def dkim_signer(dkim_key: bytes) -> DkimSigner:
    return DkimSigner.from_pem("example.com", "s1", dkim_key)


def sender_options(sink_port: int, dkim: DkimSigner | None = None, **kw: Any) -> SenderOptions:
    values: dict[str, Any] = {
        "mail_from": "Shop <news@example.com>",
        "base_url": "https://mail.example.com",
        "secret": "test-secret-key",
        "smtp": SmtpConfig("127.0.0.1", sink_port, timeout=5),
        "bounce_domain": "bounces.example.com",
        "unsubscribe_mailto": "unsubscribe@example.com",
        "dkim": dkim,
        "connections": 2,
        "worker_id": "test-worker",
    }
    values.update(kw)
    return SenderOptions(**values)


@dataclass
class FakeTokens:
    """Stands in for tidings.events.tokens.TrackingTokens in unit tests of the rewriter."""

    def open_token(self, contact_id: int, message_id: str) -> str:
        return f"o-{contact_id}-{message_id}"

    def click_token(self, contact_id: int, url: str, message_id: str) -> str:
        return f"c-{contact_id}-{len(url)}"


__all__ = ["Database", "FakeClock"]
