"""Bounces (RFC 3464 delivery-status notifications and the non-standard shapes real servers
send) and complaints (RFC 5965 ARF feedback reports): their effect on messages and contacts.

Reading a report lives in bounce_parse (structure), bounce_text (the notice's words) and
bounce_rules (what they mean); the names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
from tidings.messaging.bounce_parse import (
    BounceParseError,
    BounceReport,
    RecipientResult,
    parse_bounce,
)
from tidings.messaging.bounce_rules import BounceKind
from tidings.messaging.models import OutboxMessage
from tidings.messaging.outbox import EmailActivity, OutboxStatus
from tidings.text import counted

# Statuses a bounce changes (a complaint or an earlier bounce stays as it is).
BOUNCEABLE = frozenset(ContactStatus) - {ContactStatus.BOUNCED, ContactStatus.COMPLAINED}

__all__ = [
    "BounceKind",
    "BounceOutcome",
    "BounceParseError",
    "BounceReport",
    "RecipientResult",
    "apply_report",
    "hard_failures_bounce",
    "parse_bounce",
    "soft_bounces_since",
]


# --- applying a report --------------------------------------------------------------------


@dataclass
class BounceOutcome:
    kind: BounceKind
    matched: bool
    outbox_id: int | None = None
    contacts: list[int] = field(default_factory=list)
    status_changed: list[int] = field(default_factory=list)
    # per contact: what was recorded (hard: bounced, soft: counted) and why
    applied: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "matched": self.matched,
            "outbox_id": self.outbox_id,
            "contacts": self.contacts,
            "status_changed": self.status_changed,
            "applied": self.applied,
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
        # A report that names our recipient as delivered (an alias expanded, another
        # address failed) changes nothing for it.
        if contact is not None and (mine is None or mine.kind != BounceKind.NONE):
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
        # Each recipient with its own outcome; the report's only for a contact it does not name.
        about = recipient if recipient is not None else report
        kind = recipient.kind if recipient is not None else report.kind
        status, diagnostic = about.status, about.diagnostic
        outcome.contacts.append(contact.id)
        changed = _apply_one(
            session, contact, kind, status, diagnostic, message, report, now, soft_limit, soft_days
        )
        if changed:
            outcome.status_changed.append(contact.id)
        outcome.applied.append(
            {
                "contact_id": contact.id,
                "kind": kind.value,
                "rule": about.rule,
                "status_changed": changed,
            }
        )
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
            session,
            contact,
            f"{counted(count, 'soft bounce')} within {counted(soft_days, 'day')} (last: {status})",
            now,
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
