"""Reading a bounce or complaint: the RFC 3464 DSN, the RFC 5965 ARF report, or the plain-text
notice many servers still send; which recipients it names and which message it is about. What
each recipient's outcome means is decided by bounce_rules; the text it reads comes from
bounce_text.

Matching data, most precise first: the VERP token in the return path the report was sent to
(`bounce+<token>@bounce_domain`), the Message-ID of the original embedded in the report
(`<token>@from_domain`), then the failed recipients.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from email.message import Message
from functools import cached_property
from typing import Any

from flufl.bounce import all_failures

from tidings.messaging.bounce_rules import (
    BounceKind,
    Headers,
    Verdict,
    classify_dsn,
    classify_text,
    not_a_bounce,
    notice_shape,
    status_of,
    worst,
)
from tidings.messaging.bounce_text import (
    addresses_in,
    clean_address,
    find_addresses,
    header_text,
    is_recipient,
    notice_text,
    paragraphs,
    printable,
)

log = logging.getLogger(__name__)


class _QuietDetectors(logging.Filter):
    """flufl.bounce logs a traceback whenever one of its detectors trips over odd input; we
    treat that as "nothing found", so keep those out of the error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Exception in detector")


logging.getLogger("flufl.bounce").addFilter(_QuietDetectors())

_VERP = re.compile(r"bounce\+([0-9a-f]{32})@", re.IGNORECASE)
_TOKEN_MESSAGE_ID = re.compile(r"<?([0-9a-f]{32})@", re.IGNORECASE)
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
_HEADERS_READ = (
    "X-Failed-Recipients",
    "X-MS-Exchange-Message-Is-Ndr",
    "Auto-Submitted",
    "Precedence",
    "X-Precedence",
    "X-Autoreply",
    "X-Autorespond",
    "X-Autoreply-From",
    "X-Mail-Autoreply",
)
_OWN_ADDRESS_HEADERS = ("From", "To", "Cc", "Sender", "Reply-To", "Return-Path", "Delivered-To")


class BounceParseError(ValueError):
    """A report that claims to be a DSN or ARF report but cannot be read."""


@dataclass
class RecipientResult:
    address: str
    kind: BounceKind
    status: str | None
    diagnostic: str | None
    rule: str | None = None  # why this kind (bounce_rules)
    source: str | None = None  # where the address was read (original-recipient, text, ...)


@dataclass
class BounceReport:
    kind: BounceKind
    recipients: list[RecipientResult] = field(default_factory=list)
    status: str | None = None
    diagnostic: str | None = None
    token: str | None = None  # the outbox message this report is about, when known
    feedback_type: str | None = None
    rule: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "recipients": [r.address for r in self.recipients],
            "status": self.status,
            "diagnostic": self.diagnostic,
            "rule": self.rule,
            "message_token": self.token,
            "per_recipient": [
                {
                    "address": r.address,
                    "kind": r.kind.value,
                    "status": r.status,
                    "diagnostic": r.diagnostic,
                    "rule": r.rule,
                    "source": r.source,
                }
                for r in self.recipients
            ],
        }


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


@dataclass
class _Notice:
    """What the rules read besides the DSN fields."""

    message: Message
    headers: Headers
    text: str
    embedded: Message | None

    @cached_property
    def flufl(self) -> tuple[set[str], set[str]]:
        """flufl.bounce's (temporary, permanent) failures, read once."""
        return _flufl(self.message)

    def own_addresses(self) -> set[str]:
        """Addresses that are never the failed recipient: the report's own and the sender's."""
        values = [str(v) for n in _OWN_ADDRESS_HEADERS for v in self.message.get_all(n, [])]
        if self.embedded is not None:
            for name in ("From", "Sender", "Reply-To", "Return-Path"):
                values.extend(str(v) for v in self.embedded.get_all(name, []))
        return {a for v in values for a in find_addresses(v)}

    def verdict(self, paragraph: str = "", flufl: BounceKind | None = None) -> Verdict | None:
        return self.whole_line(classify_text(paragraph, self.text, self.headers.subject, flufl))

    def whole_line(self, verdict: Verdict | None) -> Verdict | None:
        """The evidence as the notice's whole line (a paragraph starts mid-line)."""
        if verdict is None or not verdict.evidence:
            return verdict
        line = verdict.evidence
        index = self.text.find(line)
        if index >= 0:
            end = self.text.find("\n", index + len(line))
            line = self.text[self.text.rfind("\n", 0, index) + 1 : end if end >= 0 else None]
        return replace(verdict, evidence=" ".join(line.split()))


def _headers(message: Message) -> Headers:
    values: dict[str, list[str]] = {}
    for name in _HEADERS_READ:
        found = [header_text(v) for v in message.get_all(name, [])]
        if found:
            values[name.lower()] = found
    sender = " ".join(header_text(v) for n in ("From", "Sender") for v in message.get_all(n, []))
    return Headers(header_text(message.get("Subject")), sender, values)


@dataclass
class _Found:
    """Recipients named outside a DSN, with flufl.bounce's verdict on each."""

    addresses: list[tuple[str, str]]  # (address, where it was read)
    temporary: set[str] = field(default_factory=set)
    permanent: set[str] = field(default_factory=set)

    def flufl(self, address: str) -> BounceKind | None:
        if address in self.permanent:
            return BounceKind.HARD
        return BounceKind.SOFT if address in self.temporary else None


def _flufl(message: Message) -> tuple[set[str], set[str]]:
    """flufl.bounce's detectors, for layouts we do not read ourselves: (temporary, permanent).
    It can raise on odd input; that counts as nothing found."""
    try:
        temporary, permanent = all_failures(message)
    except Exception:
        log.debug("flufl.bounce could not read the message", exc_info=True)
        return set(), set()

    def cleaned(values: Any) -> set[str]:
        out: set[str] = set()
        for value in values:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            address = clean_address(text)
            if address and is_recipient(address):
                out.add(address)
        return out

    return cleaned(temporary), cleaned(permanent)


def _named_elsewhere(message: Message, notice: _Notice) -> _Found:
    """X-Failed-Recipients, else flufl.bounce, else the addresses the notice names."""
    found: list[tuple[str, str]] = []
    for value in message.get_all("X-Failed-Recipients", []):
        for item in str(value).split(","):
            address = clean_address(item)
            if address and (address, "x-failed-recipients") not in found:
                found.append((address, "x-failed-recipients"))
    temporary, permanent = notice.flufl
    if not found:
        found = [(a, "flufl.bounce") for a in sorted(temporary | permanent)]
    if not found:
        found = [(a, "text") for a in addresses_in(notice.text, notice.own_addresses())]
    return _Found(found, temporary, permanent)


def _dsn_recipients(message: Message, notice: _Notice) -> list[RecipientResult] | None:
    """The recipients of a DSN part, each with its own outcome; None when there is no DSN part
    with recipient blocks."""
    part = next((p for p in message.walk() if p.get_content_type() in _DSN_TYPES), None)
    if part is None:
        return None
    blocks = [
        b
        for b in _delivery_status_blocks(part)
        if b.get("Final-Recipient") is not None or b.get("Original-Recipient") is not None
    ]
    if not blocks:
        return None
    read: list[tuple[str | None, str, Message]] = []
    for block in blocks:
        # Original-Recipient is the address we sent to; Final-Recipient may be what a gateway
        # rewrote it into (an internal alias, an X.400 name).
        original = clean_address(block.get("Original-Recipient"))
        final = clean_address(block.get("Final-Recipient"))
        read.append(
            (original or final, "original-recipient" if original else "final-recipient", block)
        )
    texts = paragraphs(notice.text, [a for a, _, _ in read if a])
    results: list[RecipientResult] = []
    for address, source, block in read:
        status = status_of(block.get("Status"))
        diagnostic = printable(header_text(block.get("Diagnostic-Code")))
        if diagnostic and ";" in diagnostic.split(" ")[0] + " ":
            diagnostic = diagnostic.partition(";")[2].strip() or diagnostic
        paragraph = texts.get(address or "", "")
        said = notice.verdict(paragraph)
        verdict = (
            notice.whole_line(
                classify_dsn(status, header_text(block.get("Action")), diagnostic, paragraph)
            )
            or said
            or Verdict(BounceKind.NONE, "dsn: no status, action or failure wording")
        )
        if diagnostic is None and paragraph and said is not None:
            diagnostic = said.evidence  # the notice's line about this recipient
        results.append(
            RecipientResult(
                address or "",
                verdict.kind,
                verdict.status or status,
                diagnostic,
                verdict.rule,
                source,
            )
        )
    if any(r.address for r in results):
        return [r for r in results if r.address]
    # Every block named a gateway form: the outcome is the blocks', the addresses come from
    # elsewhere (or from nowhere: the token may still match the message).
    outcome = next(r for r in results if r.kind == worst(r.kind for r in results))
    found = _named_elsewhere(message, notice)
    return [
        RecipientResult(a, outcome.kind, outcome.status, outcome.diagnostic, outcome.rule, source)
        for a, source in found.addresses
    ] or [outcome]


def _notice_recipients(message: Message, notice: _Notice) -> list[RecipientResult]:
    """A notice without a DSN part: each recipient classified from its own paragraph, then the
    whole notice; with nobody named, one nameless result for the notice as a whole."""
    found = _named_elsewhere(message, notice)
    texts = paragraphs(notice.text, [a for a, _ in found.addresses])
    results: list[RecipientResult] = []
    pairs: list[tuple[str, str | None]] = [*found.addresses] or [("", None)]
    for address, source in pairs:
        verdict = notice.verdict(texts.get(address, ""), found.flufl(address)) or Verdict(
            BounceKind.NONE, "no failure signal"
        )
        results.append(
            RecipientResult(
                address, verdict.kind, verdict.status, verdict.evidence, verdict.rule, source
            )
        )
    return results


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
        recipients.extend(find_addresses(str(fields.get(name) or "")))
    if not recipients and embedded is not None:
        recipients.extend(find_addresses(str(embedded.get("To") or "")))
    if token is None and not recipients:
        raise BounceParseError(
            "ARF report names neither the original message (Message-ID) nor a recipient"
        )
    feedback_type = str(fields.get("Feedback-Type")).strip().lower()
    rule = f"arf feedback-type {feedback_type}"
    return BounceReport(
        kind=BounceKind.COMPLAINT,
        recipients=[
            RecipientResult(a, BounceKind.COMPLAINT, None, None, rule, "arf") for a in recipients
        ],
        diagnostic=f"feedback-type {feedback_type}",
        token=token,
        feedback_type=feedback_type,
        rule=rule,
    )


def parse_bounce(raw: bytes, envelope_recipients: Sequence[str] = ()) -> BounceReport:
    """Read a bounce or complaint. Raises BounceParseError on a malformed report."""
    raw = raw.replace(b"\x00", b"")  # a NUL is no part of mail: read what is around it
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
        return _printable(report)
    embedded = _embedded_headers(message)
    token = verp or (_token_from_headers(embedded) if embedded is not None else None)
    if report_type == "disposition-notification":
        return BounceReport(BounceKind.NONE, token=token, rule="read receipt (MDN), not a bounce")
    notice = _Notice(message, _headers(message), notice_text(message), embedded)
    recipients = _dsn_recipients(message, notice)
    if recipients is None:
        # flufl.bounce's looser detectors also fire on auto-replies ("this mailbox does not
        # exist anymore"), so what it finds never makes a message a delivery notice.
        shape = notice_shape(notice.headers, notice.text, report_type == "delivery-status")
        excuse = not_a_bounce(notice.headers, shape)
        if excuse is not None:
            return _printable(BounceReport(BounceKind.NONE, token=token, rule=excuse))
        recipients = _notice_recipients(message, notice)
    named = _merged([r for r in recipients if r.address])
    # With nobody named, the outcome still counts for the message the token names.
    kind = worst(r.kind for r in named or recipients)
    first = next(r for r in named or recipients if r.kind == kind)
    return _printable(
        BounceReport(
            kind=kind,
            recipients=named,
            status=first.status,
            diagnostic=first.diagnostic,
            token=token,
            rule=first.rule,
        )
    )


def _printable(report: BounceReport) -> BounceReport:
    """What leaves the parser is stored and logged: no control characters in it."""
    items: list[BounceReport | RecipientResult] = [report, *report.recipients]
    for item in items:
        item.diagnostic, item.rule = printable(item.diagnostic), printable(item.rule)
    report.feedback_type = printable(report.feedback_type)
    return report


def _merged(recipients: list[RecipientResult]) -> list[RecipientResult]:
    """One result per address (a report may name one twice): the worst outcome."""
    by_address: dict[str, RecipientResult] = {}
    for r in recipients:
        known = by_address.get(r.address)
        if known is None or worst([known.kind, r.kind]) != known.kind:
            by_address[r.address] = r
    return list(by_address.values())
