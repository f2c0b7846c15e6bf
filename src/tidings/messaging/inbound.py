"""Inbound mail (aiosmtpd): bounces to the VERP address, ARF complaints from feedback loops,
unsubscribe requests to the List-Unsubscribe mailto address, and replies to 1:1 deal email
(to its reply+<token> address, or naming its Message-ID in In-Reply-To / References).

Everything is accepted with 250 (refusing a bounce only makes the remote server bounce the
bounce); a message that matches nothing is logged and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from typing import Any

from sqlalchemy.orm import Session

from tidings.clock import Clock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.deals.emails import record_reply
from tidings.messaging.bounce_parse import BounceReport
from tidings.messaging.bounce_rules import BounceKind
from tidings.messaging.bounces import BounceParseError, apply_report, parse_bounce
from tidings.messaging.personal import referenced_tokens, reply_tokens
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
    if reply_tokens(rcpt_tos):
        with db.session() as session:
            return reply_result(session, rcpt_tos, message_from_bytes(raw), clock.now())
    try:
        report: BounceReport | None = parse_bounce(raw, rcpt_tos)
    except BounceParseError as exc:
        report, error = None, str(exc)
    message = message_from_bytes(raw)
    if may_be_reply(message, report):  # a reply that reached another of our addresses
        with db.session() as session:
            result = reply_result(session, rcpt_tos, message, clock.now())
        if result.matched:
            return result
    if report is None:
        log.warning("inbound message is not a readable report: %s", error)
        return InboundResult("none", False, {"error": error})
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


def may_be_reply(message: Message, report: BounceReport | None) -> bool:
    """A message that is no bounce or complaint (nor any other report, such as a read
    receipt) and names one of our Message-IDs may be a reply to a deal email."""
    return (
        (report is None or report.kind == BounceKind.NONE)
        and message.get_content_type() != "multipart/report"
        and bool(referenced_tokens(message))
    )


def reply_result(
    session: Session, rcpt_tos: list[str], message: Message, now: datetime
) -> InboundResult:
    """A reply to a deal email, stored on its deal; a message naming no sent email is logged
    and dropped (not a reply)."""
    outcome = record_reply(
        session, reply_tokens(rcpt_tos) + referenced_tokens(message), message, now=now
    )
    if outcome is None:
        log.info("inbound reply matches no sent email (to %s)", ", ".join(rcpt_tos))
        return InboundResult("reply", False, {"error": "matches no sent email"})
    return InboundResult("reply", True, outcome.as_json())


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
