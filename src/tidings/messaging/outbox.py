"""The outbox: the only way a message leaves Tidings.

A message is written here, in the transaction that decides to send it, keyed by an idempotency
key (a second call with the same key changes nothing). A refusal by the sending policy is kept
too, with its reason, as an outbox row in status `refused` and an `email_refused` activity.
The sender (tidings.messaging.sender) claims rows with a lease and checks the policy again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.activities.service import Cause, record
from tidings.contacts.models import Contact
from tidings.contacts.policy import MessageClass, may_send
from tidings.contacts.repository import is_suppressed
from tidings.db.bulk import dialect_insert
from tidings.messaging.models import EmailTemplate, OutboxMessage


class OutboxStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    DELIVERING = "delivering"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    REFUSED = "refused"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"


class EmailActivity(StrEnum):
    """Activity types written by messaging; automations can react to them."""

    REFUSED = "email_refused"
    SENT = "email_sent"
    DEFERRED = "email_deferred"
    FAILED = "email_failed"
    BOUNCED = "email_bounced"
    SOFT_BOUNCED = "email_soft_bounced"
    COMPLAINED = "email_complained"
    UNSUBSCRIBED = "email_unsubscribed"
    OPT_IN_CONFIRMED = "opt_in_confirmed"


@dataclass(frozen=True, slots=True)
class QueueResult:
    queued: bool
    reason: str
    outbox_id: int | None = None
    duplicate: bool = False


def new_message_token() -> str:
    """The unique part of the Message-ID (and of the VERP return path)."""
    return uuid.uuid4().hex


def insert_ignoring_duplicates(session: Session, values: dict[str, Any]) -> bool:
    """Insert one outbox row unless its idempotency key exists; True if inserted."""
    statement = (
        dialect_insert(session, OutboxMessage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def _existing(session: Session, key: str) -> QueueResult | None:
    row = session.execute(
        select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.reason).where(
            OutboxMessage.idempotency_key == key
        )
    ).first()
    if row is None:
        return None
    queued = row.status != OutboxStatus.REFUSED
    reason = f"already {'queued' if queued else 'refused'} under this key: {row.reason or ''}"
    return QueueResult(queued, reason.rstrip(": "), row.id, duplicate=True)


def queue_email(
    session: Session,
    *,
    contact_id: int,
    template: str,
    message_class: str,
    idempotency_key: str,
    now: datetime,
    context: dict[str, Any] | None = None,
    cause: str = Cause.SYSTEM,
) -> QueueResult:
    """Queue one message to one contact, or record why the policy refuses it."""
    done = _existing(session, idempotency_key)
    if done is not None:
        return done
    MessageClass(message_class)  # an unknown class is a programming error: fail loudly
    contact = session.get(Contact, contact_id)
    template_id = session.scalar(select(EmailTemplate.id).where(EmailTemplate.name == template))
    if contact is None:
        queued, reason = False, f"contact {contact_id} does not exist"
    elif template_id is None:
        queued, reason = False, f"template {template!r} does not exist"
    else:
        decision = may_send(
            contact.status, message_class, suppressed=is_suppressed(session, contact.email)
        )
        queued, reason = decision.allowed, decision.reason
    values = {
        "idempotency_key": idempotency_key,
        "contact_id": contact_id,
        "template_id": template_id,
        "broadcast_id": None,
        "message_class": message_class,
        "context": context or {},
        "status": OutboxStatus.QUEUED if queued else OutboxStatus.REFUSED,
        "reason": None if queued else reason,
        "attempts": 0,
        "next_attempt_at": now,
        "message_id": new_message_token(),
        "recipient": contact.email if contact is not None else None,
        "created_at": now,
        "updated_at": now,
    }
    if not insert_ignoring_duplicates(session, values):
        # Another transaction queued the same key in the meantime.
        return _existing(session, idempotency_key) or QueueResult(False, "duplicate key")
    outbox_id = session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.idempotency_key == idempotency_key)
    )
    if not queued and contact is not None:
        record(
            session,
            contact_id,
            EmailActivity.REFUSED,
            cause,
            now,
            {
                "reason": reason,
                "template": template,
                "message_class": message_class,
                "outbox_id": outbox_id,
            },
        )
    return QueueResult(queued, reason, outbox_id)
