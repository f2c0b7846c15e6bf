"""Inbound mail (aiosmtpd): bounces to the VERP address, ARF complaints from feedback loops,
and unsubscribe requests to the List-Unsubscribe mailto address.

Everything is accepted with 250 (refusing a bounce only makes the remote server bounce the
bounce); a message that matches nothing is logged and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from email import message_from_bytes
from typing import Any

from tidings.clock import Clock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.messaging.bounces import BounceParseError, apply_report, parse_bounce
from tidings.messaging.subscriptions import unsubscribe_by_token_mail

log = logging.getLogger(__name__)
_UNSUBSCRIBE_SUBJECT = re.compile(r"unsubscribe-([0-9a-f]{32})", re.IGNORECASE)


@dataclass
class InboundResult:
    kind: str
    matched: bool
    detail: dict[str, Any] = field(default_factory=dict)


def process_inbound(
    db: Database, clock: Clock, settings: Settings, rcpt_tos: list[str], raw: bytes
) -> InboundResult:
    mailto = (settings.unsubscribe_mailto or "").lower()
    if mailto and any(r.lower() == mailto for r in rcpt_tos):
        subject = str(message_from_bytes(raw).get("Subject") or "")
        match = _UNSUBSCRIBE_SUBJECT.search(subject)
        if match is None:
            return InboundResult("unsubscribe", False, {"error": "no token in the subject"})
        with db.session() as session:
            done = unsubscribe_by_token_mail(session, match.group(1).lower(), now=clock.now())
        return InboundResult("unsubscribe", done)
    try:
        report = parse_bounce(raw, rcpt_tos)
    except BounceParseError as exc:
        log.warning("inbound message is not a readable report: %s", exc)
        return InboundResult("none", False, {"error": str(exc)})
    with db.session() as session:
        outcome = apply_report(
            session,
            report,
            now=clock.now(),
            soft_limit=settings.soft_bounce_limit,
            soft_days=settings.soft_bounce_days,
        )
    if not outcome.matched:
        log.info("inbound %s report matched no message or contact", report.kind)
    return InboundResult(report.kind.value, outcome.matched, outcome.as_json())


class InboundHandler:
    def __init__(self, db: Database, clock: Clock, settings: Settings) -> None:
        self.db, self.clock, self.settings = db, clock, settings
        self.results: list[InboundResult] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            result = await asyncio.to_thread(
                process_inbound, self.db, self.clock, self.settings, list(envelope.rcpt_tos), raw
            )
        except Exception:  # never lose the listener over one message; the database may be away
            log.exception("inbound message could not be processed")
            return "451 4.3.0 Temporary failure, try again later"
        self.results.append(result)
        return "250 OK"
