"""Bounces (RFC 3464 delivery-status notifications and the non-standard shapes real servers
send) and complaints (RFC 5965 ARF feedback reports): parsing, matching, and their effect.

Matching, most precise first: the VERP token in the return path the report was sent to
(`bounce+<token>@bounce_domain`), the Message-ID of the original message embedded in the report
(`<token>@from_domain`), then the failed recipient addresses (flufl.bounce as a last resort).
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import Message
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.activities.service import ActivityRow, Cause, record, record_many
from tidings.contacts import repository as contacts_repository
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact
from tidings.contacts.policy import ContactStatus
from tidings.contacts.service import change_status
from tidings.db.bulk import in_values
from tidings.messaging.models import OutboxMessage
from tidings.messaging.outbox import EmailActivity, OutboxStatus

log = logging.getLogger(__name__)
# Statuses a bounce changes (a complaint or an earlier bounce stays as it is).
BOUNCEABLE = frozenset(ContactStatus) - {ContactStatus.BOUNCED, ContactStatus.COMPLAINED}


class _QuietDetectors(logging.Filter):
    """flufl.bounce logs a traceback whenever one of its detectors trips over odd input; we
    treat that as "nothing found", so keep those out of the error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Exception in detector")


logging.getLogger("flufl.bounce").addFilter(_QuietDetectors())

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([45])\d\d\b")
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_VERP = re.compile(r"bounce\+([0-9a-f]{32})@", re.IGNORECASE)
_TOKEN_MESSAGE_ID = re.compile(r"<?([0-9a-f]{32})@", re.IGNORECASE)


class BounceKind(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    COMPLAINT = "complaint"
    NONE = "none"


class BounceParseError(ValueError):
    """A report that claims to be a DSN or ARF report but cannot be read."""


@dataclass
class RecipientResult:
    address: str
    kind: BounceKind
    status: str | None
    diagnostic: str | None


@dataclass
class BounceReport:
    kind: BounceKind
    recipients: list[RecipientResult] = field(default_factory=list)
    status: str | None = None
    diagnostic: str | None = None
    token: str | None = None  # the outbox message this report is about, when known
    feedback_type: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "recipients": [r.address for r in self.recipients],
            "status": self.status,
            "diagnostic": self.diagnostic,
            "message_token": self.token,
            "per_recipient": [
                {
                    "address": r.address,
                    "kind": r.kind.value,
                    "status": r.status,
                    "diagnostic": r.diagnostic,
                }
                for r in self.recipients
            ],
        }


def _kind_of(status: str | None, action: Any) -> BounceKind:
    # str(): with 8-bit bytes in a header, the email package hands back a Header object.
    action = str(action or "").strip().lower()
    if action in ("delivered", "relayed", "expanded"):
        return BounceKind.NONE
    if status and status.startswith("5"):
        return BounceKind.HARD
    if (status and status.startswith("4")) or action == "delayed":
        return BounceKind.SOFT
    if action == "failed":
        return BounceKind.HARD
    return BounceKind.NONE


def _worst(kinds: Iterable[BounceKind]) -> BounceKind:
    order = [BounceKind.COMPLAINT, BounceKind.HARD, BounceKind.SOFT, BounceKind.NONE]
    present = set(kinds)
    return next((k for k in order if k in present), BounceKind.NONE)


def _address_field(value: str | None) -> str | None:
    """'rfc822; ann@example.com' -> 'ann@example.com'."""
    if not value:
        return None
    _, _, address = str(value).partition(";")
    address = (address or str(value)).strip().strip("<>").strip()
    return address.lower() or None


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    return " ".join(str(value).split()) or None


def _status_of(value: Any) -> str | None:
    match = _STATUS.search(str(value or ""))
    return ".".join(match.groups()) if match else None


def _token_from_headers(headers: Message) -> str | None:
    for name in ("Message-ID", "Message-Id"):
        value = headers.get(name)
        if value:
            match = _TOKEN_MESSAGE_ID.search(str(value))
            if match:
                return match.group(1).lower()
    return None


def _embedded_headers(message: Message) -> Message | None:
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            raw = part.get_payload(decode=True) or b""
            if isinstance(raw, bytes):
                return email.message_from_bytes(raw.lstrip(), policy=email.policy.compat32)
    return None


def _verp_token(message: Message, envelope_recipients: Sequence[str]) -> str | None:
    candidates = list(envelope_recipients)
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To", "X-Envelope-To"):
        candidates.extend(str(v) for v in message.get_all(name, []))
    for value in candidates:
        match = _VERP.search(value)
        if match:
            return match.group(1).lower()
    return None


def _delivery_status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    # Some servers send it base64 or as a plain string: parse the blocks ourselves.
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    blocks = re.split(r"\r?\n\s*\r?\n", text.strip())
    return [
        email.message_from_string(b.strip() + "\n", policy=email.policy.compat32) for b in blocks
    ]


def _parse_dsn(message: Message) -> list[RecipientResult]:
    part = next(
        (
            p
            for p in message.walk()
            if p.get_content_type() in ("message/delivery-status", "message/global-delivery-status")
        ),
        None,
    )
    if part is None:
        return []
    blocks = _delivery_status_blocks(part)
    results: list[RecipientResult] = []
    for block in blocks[1:] if len(blocks) > 1 else blocks:
        address = _address_field(block.get("Final-Recipient")) or _address_field(
            block.get("Original-Recipient")
        )
        if not address:
            continue
        status = _status_of(block.get("Status"))
        diagnostic = _clean(block.get("Diagnostic-Code"))
        if diagnostic and ";" in diagnostic.split(" ")[0] + " ":
            diagnostic = diagnostic.partition(";")[2].strip() or diagnostic
        results.append(
            RecipientResult(address, _kind_of(status, block.get("Action")), status, diagnostic)
        )
    return results


def _body_text(message: Message) -> str:
    texts: list[str] = []
    for part in message.walk():
        if part.get_content_type() in ("text/plain", "text/html") and not _inside_rfc822(
            message, part
        ):
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                texts.append(raw.decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(texts)


def _inside_rfc822(root: Message, target: Message) -> bool:
    for part in root.walk():
        if part.get_content_type() == "message/rfc822" and part is not target:
            for inner in part.walk():
                if inner is target and inner is not part:
                    return True
    return False


def _flufl_recipients(message: Message) -> set[str]:
    """flufl.bounce's heuristics for non-standard bounces. It can raise on odd input."""
    try:
        from flufl.bounce import scan_message

        found = scan_message(message)
    except Exception:
        log.debug("flufl.bounce could not read the message", exc_info=True)
        return set()
    out: set[str] = set()
    for value in found:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        if "@" in text:
            out.add(text.strip().strip("<>").lower())
    return out


def _parse_plain(message: Message) -> list[RecipientResult]:
    """Exim-style and other text bounces: X-Failed-Recipients and codes in the text."""
    text = _body_text(message)
    status = _status_of(text)
    code = _SMTP_CODE.search(text)
    kind = BounceKind.NONE
    lowered = text.lower()
    if status:
        kind = BounceKind.HARD if status.startswith("5") else BounceKind.SOFT
    elif code:
        kind = BounceKind.HARD if code.group(1) == "5" else BounceKind.SOFT
    elif "permanent error" in lowered or "could not be delivered" in lowered:
        kind = BounceKind.HARD
    elif "temporary" in lowered or "delayed" in lowered:
        kind = BounceKind.SOFT
    if "this is a permanent error" in lowered and kind == BounceKind.SOFT:
        kind = BounceKind.HARD
    addresses: list[str] = []
    for value in message.get_all("X-Failed-Recipients", []):
        addresses.extend(a.strip().lower() for a in str(value).split(",") if "@" in a)
    if not addresses:
        addresses = sorted(_flufl_recipients(message))
    diagnostic = None
    for line in text.splitlines():
        if _STATUS.search(line) or _SMTP_CODE.match(line.strip()):
            diagnostic = _clean(line)
            break
    return [RecipientResult(a, kind, status, diagnostic) for a in addresses]


def _parse_arf(message: Message) -> BounceReport:
    part = next(
        (p for p in message.walk() if p.get_content_type() == "message/feedback-report"), None
    )
    if part is None:
        raise BounceParseError("ARF report without a message/feedback-report part")
    blocks = _delivery_status_blocks(part)
    if not blocks or blocks[0].get("Feedback-Type") is None:
        raise BounceParseError("ARF report: the feedback-report part has no Feedback-Type field")
    fields = blocks[0]
    embedded = _embedded_headers(message)
    token = _token_from_headers(embedded) if embedded is not None else None
    recipients: list[str] = []
    for name in ("Original-Rcpt-To", "Removal-Recipient"):
        recipients.extend(a.lower() for a in _ADDRESS.findall(str(fields.get(name) or "")))
    if not recipients and embedded is not None:
        recipients.extend(a.lower() for a in _ADDRESS.findall(str(embedded.get("To") or "")))
    if token is None and not recipients:
        raise BounceParseError(
            "ARF report names neither the original message (Message-ID) nor a recipient"
        )
    feedback_type = str(fields.get("Feedback-Type")).strip().lower()
    return BounceReport(
        kind=BounceKind.COMPLAINT,
        recipients=[RecipientResult(a, BounceKind.COMPLAINT, None, None) for a in recipients],
        diagnostic=f"feedback-type {feedback_type}",
        token=token,
        feedback_type=feedback_type,
    )


def parse_bounce(raw: bytes, envelope_recipients: Sequence[str] = ()) -> BounceReport:
    """Read a bounce or complaint. Raises BounceParseError on a malformed report."""
    if not raw.strip():
        raise BounceParseError("empty message")
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    if message.defects and not message.keys():
        raise BounceParseError("not an RFC 822 message")
    report_type = (message.get_param("report-type") or "") if message.is_multipart() else ""
    report_type = str(report_type).lower()
    verp = _verp_token(message, envelope_recipients)
    if report_type == "feedback-report" or any(
        p.get_content_type() == "message/feedback-report" for p in message.walk()
    ):
        report = _parse_arf(message)
        report.token = verp or report.token
        return report
    recipients = _parse_dsn(message)
    if not recipients:
        recipients = _parse_plain(message)
    embedded = _embedded_headers(message)
    token = verp or (_token_from_headers(embedded) if embedded is not None else None)
    kind = _worst(r.kind for r in recipients)
    first = next((r for r in recipients if r.kind == kind), None)
    return BounceReport(
        kind=kind,
        recipients=recipients,
        status=first.status if first else None,
        diagnostic=first.diagnostic if first else None,
        token=token,
    )


# --- applying a report --------------------------------------------------------------------


@dataclass
class BounceOutcome:
    kind: BounceKind
    matched: bool
    outbox_id: int | None = None
    contacts: list[int] = field(default_factory=list)
    status_changed: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "matched": self.matched,
            "outbox_id": self.outbox_id,
            "contacts": self.contacts,
            "status_changed": self.status_changed,
        }


def soft_bounces_since(session: Session, contact_id: int, since: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Activity)
            .where(
                Activity.contact_id == contact_id,
                Activity.type == EmailActivity.SOFT_BOUNCED,
                Activity.occurred_at >= since,
            )
        )
        or 0
    )


def apply_report(
    session: Session,
    report: BounceReport,
    *,
    now: datetime,
    soft_limit: int = 3,
    soft_days: int = 7,
) -> BounceOutcome:
    """Record what a report says, for the message and contacts it matches."""
    outcome = BounceOutcome(report.kind, matched=False)
    if report.kind == BounceKind.NONE:
        return outcome
    message: OutboxMessage | None = None
    if report.token:
        message = session.scalar(
            select(OutboxMessage).where(OutboxMessage.message_id == report.token)
        )
    targets: list[tuple[Contact, RecipientResult | None]] = []
    if message is not None:
        contact = session.get(Contact, message.contact_id)
        mine = next(
            (r for r in report.recipients if contact is not None and r.address == contact.email),
            None,
        )
        if contact is not None:
            targets.append((contact, mine))
        outcome.outbox_id = message.id
    else:
        addresses = sorted({r.address for r in report.recipients if r.kind != BounceKind.NONE})
        by_email = (
            {
                c.email: c
                for c in session.scalars(select(Contact).where(Contact.email.in_(addresses)))
            }
            if addresses
            else {}
        )
        for r in report.recipients:
            if r.address in by_email:
                targets.append((by_email[r.address], r))
    if message is None and not targets:
        return outcome
    outcome.matched = True
    for contact, recipient in targets:
        kind = (
            recipient.kind
            if recipient is not None and recipient.kind != BounceKind.NONE
            else report.kind
        )
        status = recipient.status if recipient is not None else report.status
        diagnostic = recipient.diagnostic if recipient is not None else report.diagnostic
        outcome.contacts.append(contact.id)
        if _apply_one(
            session, contact, kind, status, diagnostic, message, report, now, soft_limit, soft_days
        ):
            outcome.status_changed.append(contact.id)
    return outcome


def _apply_one(
    session: Session,
    contact: Contact,
    kind: BounceKind,
    status: str | None,
    diagnostic: str | None,
    message: OutboxMessage | None,
    report: BounceReport,
    now: datetime,
    soft_limit: int,
    soft_days: int,
) -> bool:
    data: dict[str, Any] = {
        "status": status,
        "diagnostic": diagnostic,
        "outbox_id": message.id if message else None,
        "broadcast_id": message.broadcast_id if message else None,
    }
    if kind == BounceKind.COMPLAINT:
        data["feedback_type"] = report.feedback_type
        record(session, contact.id, EmailActivity.COMPLAINED, Cause.TRACKING, now, data)
        _mark_message(session, message, OutboxStatus.COMPLAINED, now)
        return change_status(
            session,
            contact,
            ContactStatus.COMPLAINED,
            now=now,
            cause=Cause.TRACKING,
            reason=f"spam complaint ({report.feedback_type or 'abuse'})",
        )
    if kind == BounceKind.HARD:
        record(session, contact.id, EmailActivity.BOUNCED, Cause.TRACKING, now, data)
        _mark_message(session, message, OutboxStatus.BOUNCED, now)
        return _bounce(session, contact, f"hard bounce {status or ''}: {diagnostic or ''}", now)
    record(session, contact.id, EmailActivity.SOFT_BOUNCED, Cause.TRACKING, now, data)
    session.flush()
    count = soft_bounces_since(session, contact.id, now - timedelta(days=soft_days))
    if count >= soft_limit:
        return _bounce(
            session, contact, f"{count} soft bounces within {soft_days} days (last: {status})", now
        )
    return False


def _bounce(session: Session, contact: Contact, reason: str, now: datetime) -> bool:
    if contact.status in (ContactStatus.BOUNCED, ContactStatus.COMPLAINED):
        return False
    return change_status(
        session,
        contact,
        ContactStatus.BOUNCED,
        now=now,
        cause=Cause.TRACKING,
        reason=" ".join(reason.split()),
    )


def _mark_message(
    session: Session, message: OutboxMessage | None, status: str, now: datetime
) -> None:
    if message is not None:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id)
            .values(status=status, updated_at=now)
        )


def hard_failures_bounce(session: Session, outcomes: Sequence[Any], now: datetime) -> None:
    """A 5xx at RCPT TO from the receiving server is a hard bounce given synchronously.

    Set-wise for a whole sending batch: one lookup of the contacts, one insert of the
    `email_bounced` rows, one UPDATE of the messages and one status change through the
    contacts write API (a contact that complained stays complained).
    """
    failures = [
        (outcome.job, outcome.result)
        for outcome in outcomes
        # A policy refusal (5.7.x) is not a bad address.
        if outcome.result.enhanced is None or outcome.result.enhanced.startswith("5.1")
    ]
    present = contacts_repository.existing_ids(
        session, sorted({job.contact_id for job, _ in failures})
    )
    rows: list[ActivityRow] = []
    reasons: dict[int, str] = {}
    for job, result in failures:
        if job.contact_id not in present:
            continue
        diagnostic = f"{result.code} {result.message}"
        data = {
            "status": result.enhanced,
            "diagnostic": diagnostic,
            "outbox_id": job.id,
            "broadcast_id": job.broadcast_id,
        }
        rows.append(ActivityRow(job.contact_id, EmailActivity.BOUNCED, Cause.TRACKING, now, data))
        # The first failure of a contact names the reason (as when they were applied in turn).
        reason = f"hard bounce {result.enhanced or ''}: {diagnostic}"
        reasons.setdefault(job.contact_id, " ".join(reason.split()))
    if not rows:
        return
    record_many(session, rows)
    session.execute(
        update(OutboxMessage)
        .where(in_values(session, OutboxMessage.id, [row.data["outbox_id"] for row in rows]))
        .values(status=OutboxStatus.BOUNCED, updated_at=now)
    )
    contacts.set_status(
        session,
        sorted(reasons),
        ContactStatus.BOUNCED,
        cause=Cause.TRACKING,
        now=now,
        reason=reasons,
        only_from=BOUNCEABLE,
    )
