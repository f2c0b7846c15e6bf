"""The outbox: the only way a message leaves Tidings, and its one writer (`queue_many`).

A message is written here, in the transaction that decides to send it, keyed by an idempotency
key (a second call with the same key changes nothing). A refusal by the sending policy is kept
too, with its reason, as an outbox row in status `refused` and an `email_refused` activity.
Broadcasts, the automation `send_email` step, transactional mail and double-opt-in
confirmations all queue through `queue_many` (set-wise) or its per-message forms `queue_each`
and `queue_email`. The sender (tidings.messaging.sender) claims rows with a lease and checks
the policy again right before the final dot.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, TypeAlias

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    case,
    cast,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from tidings.activities.service import Cause, record_tuples
from tidings.contacts.models import Contact
from tidings.contacts.policy import MessageClass, may_send
from tidings.db.bulk import dialect_insert, in_values, rows_select
from tidings.db.dialect import dialect_of
from tidings.db.types import UTCDateTime
from tidings.messaging.models import EmailTemplate, OutboxMessage
from tidings.messaging.policy_sql import may_receive, refusal_reason


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


class QueueResult(NamedTuple):  # a tuple: a batch makes a thousand of them
    queued: bool
    reason: str
    outbox_id: int | None = None
    duplicate: bool = False


def new_message_token() -> str:
    """A random token of the same form as the Message-ID tokens (32 hex digits)."""
    return uuid.uuid4().hex


# Message tokens are a prefix shared by the rows of one queue_many call, growing call by call
# (from a random start per process), and 96 random bits. Wholly random tokens put each
# batch's thousand new entries all over the unique index on the token, so every commit
# rewrote most of that index's pages, more as the outbox grew; with the prefix they land
# together. The random part keeps a token unguessable.
_TOKEN_PREFIXES = itertools.count(secrets.randbits(32))


def token_column(session: Session) -> ColumnElement[str]:
    """SQL: a new message token per row (the unique part of its Message-ID and VERP return
    path): 32 hex digits."""
    prefix = literal(f"{next(_TOKEN_PREFIXES) % 2**32:08x}")
    return prefix + dialect_of(session).random_hex(12)


# A row written by queue_many, as RETURNING gives it (named columns: id, idempotency_key,
# contact_id, status, reason, recipient); the rows are not copied into objects of their own,
# which cost as much again as fetching them for a broadcast of 100,000.
Written: TypeAlias = Row[int, str, int, str, str | None, str | None]


_COLUMNS = (
    "idempotency_key",
    "contact_id",
    "template_id",
    "broadcast_id",
    "message_class",
    "context",
    "status",
    "reason",
    "attempts",
    "next_attempt_at",
    "message_id",
    "recipient",
    "created_at",
    "updated_at",
)


def queue_many(
    session: Session,
    recipients: Select[int, str, str, str],
    *,
    template: str,
    message_class: str,
    now: datetime,
    cause: str,
    context: dict[str, Any] | None = None,
    broadcast_id: int | None = None,
) -> Sequence[Written]:
    """THE outbox writer: one message per row of `recipients`, decided by the sending policy
    in SQL, in one INSERT ... SELECT (plus one insert of the refusals' activity rows).

    `recipients` selects (contact id, idempotency key, the contact's status, its email), one
    row per message; status and email are NULL for a contact that does not exist (see
    queue_each). Every row becomes an outbox row: `queued`, or `refused` with the policy's
    reason (contact missing, template missing, suppressed, or the contact's status) and an
    `email_refused` activity. A key that exists already is left alone (ON CONFLICT DO
    NOTHING), so running the same call twice queues nothing twice. Returns the rows written
    by this call.
    """
    klass = MessageClass(message_class)  # an unknown class is a programming error: fail loudly
    template_id = session.scalar(select(EmailTemplate.id).where(EmailTemplate.name == template))
    given = recipients.subquery("recipients")
    contact_id, key, contact_status, email = given.c
    missing = (
        contact_status.is_(None),
        literal("contact ") + cast(contact_id, String) + " does not exist",
    )
    if template_id is None:
        reason: ColumnElement[Any] = case(
            missing, else_=literal(f"template {template!r} does not exist")
        )
        status: ColumnElement[Any] = literal(OutboxStatus.REFUSED.value)
    else:
        reason = case(missing, else_=refusal_reason(contact_status, email, klass))
        status = case(
            (may_receive(contact_status, email, klass), literal(OutboxStatus.QUEUED.value)),
            else_=literal(OutboxStatus.REFUSED.value),
        )
    table = OutboxMessage.__table__
    rows = select(
        key,
        contact_id,
        literal(template_id, BigInteger()),
        literal(broadcast_id, BigInteger()),
        literal(klass.value),
        literal(context or {}, type_=table.c.context.type),
        status,
        reason,
        literal(0),
        literal(now, type_=UTCDateTime()),
        token_column(session),
        email,
        literal(now, type_=UTCDateTime()),
        literal(now, type_=UTCDateTime()),
    )
    # SQLite needs a WHERE on INSERT ... SELECT ... ON CONFLICT to parse it.
    statement = (
        dialect_insert(session, table)
        .from_select(_COLUMNS, rows.where(true()))
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(
            table.c.id,
            table.c.idempotency_key,
            table.c.contact_id,
            table.c.status,
            table.c.reason,
            table.c.recipient,
        )
    )
    # Fetched at once: iterating the result would fetch row by row.
    written: Sequence[Written] = session.execute(statement).all()
    refused, queued = EmailActivity.REFUSED.value, OutboxStatus.QUEUED.value
    extra = {} if broadcast_id is None else {"broadcast_id": broadcast_id}
    record_tuples(
        session,
        [
            (
                contact,
                refused,
                cause,
                now,
                {
                    "reason": why,
                    "template": template,
                    "message_class": klass.value,
                    "outbox_id": oid,
                    **extra,
                },
            )
            for oid, _, contact, status, why, recipient in written
            # a contact that does not exist has no history to write to
            if status != queued and recipient is not None
        ],
    )
    return written


def queue_each(
    session: Session,
    messages: Sequence[tuple[int, str]],
    *,
    template: str,
    message_class: str,
    now: datetime,
    cause: str,
    context: dict[str, Any] | None = None,
) -> dict[str, QueueResult]:
    """queue_many for messages given as (contact id, idempotency key) pairs: the result of
    each key, including keys queued (or refused) before, which are left as they are."""
    if not messages:
        return {}
    written = queue_many(
        session,
        _with_contacts(session, messages),
        template=template,
        message_class=message_class,
        now=now,
        cause=cause,
        context=context,
    )
    queued = OutboxStatus.QUEUED.value
    results = {
        key: QueueResult(status == queued, why or "", oid)
        for oid, key, _, status, why, _ in written
    }
    earlier = sorted({key for _, key in messages} - results.keys())
    if earlier:
        results.update(_existing(session, earlier))
    return results


def _with_contacts(
    session: Session, messages: Sequence[tuple[int, str]]
) -> Select[int, str, str, str]:
    """The recipients of queue_many for (contact id, key) pairs: each pair with its contact's
    status and email (NULL when the contact does not exist), one primary-key probe each.

    PostgreSQL gets the probe as a LATERAL subquery per pair (OFFSET 0 keeps it one): as a
    plain join its planner hashed the whole contacts table for every batch, with or without
    statistics. SQLite probes by primary key for a plain join (it has no LATERAL)."""
    given = rows_select(
        session, [("contact_id", BigInteger()), ("idempotency_key", String())], messages
    ).subquery("messages")
    if not dialect_of(session).probes_laterally:
        return select(
            given.c.contact_id, given.c.idempotency_key, Contact.status, Contact.email
        ).select_from(given.outerjoin(Contact, Contact.id == given.c.contact_id))
    contact = (
        select(Contact.status, Contact.email)
        .where(Contact.id == given.c.contact_id)
        .offset(0)
        .lateral("contact")
    )
    return select(
        given.c.contact_id, given.c.idempotency_key, contact.c.status, contact.c.email
    ).select_from(given.outerjoin(contact, true()))


def _existing(session: Session, keys: Sequence[str]) -> dict[str, QueueResult]:
    """The results of keys written before: 'already queued (or refused) under this key'."""
    found: dict[str, QueueResult] = {}
    for row in session.execute(
        select(
            OutboxMessage.idempotency_key,
            OutboxMessage.id,
            OutboxMessage.status,
            OutboxMessage.reason,
        ).where(in_values(session, OutboxMessage.idempotency_key, keys))
    ):
        queued = row.status != OutboxStatus.REFUSED
        reason = f"already {'queued' if queued else 'refused'} under this key: {row.reason or ''}"
        found[row.idempotency_key] = QueueResult(
            queued, reason.rstrip(": "), row.id, duplicate=True
        )
    return found


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
    """Queue one message to one contact, or record why the policy refuses it (queue_each for
    one message; a queued result says which rule allowed it)."""
    result = queue_each(
        session,
        [(contact_id, idempotency_key)],
        template=template,
        message_class=message_class,
        now=now,
        cause=cause,
        context=context,
    )[idempotency_key]
    if result.queued and not result.duplicate:
        status = session.scalar(select(Contact.status).where(Contact.id == contact_id))
        result = QueueResult(True, may_send(str(status), message_class).reason, result.outbox_id)
    return result


class Outcome(NamedTuple):
    """How many messages of one template ended up queued or refused (with one reason)."""

    template: str | None  # None: the template did not exist when the message was written
    status: str
    reason: str | None
    messages: int


def outcomes(
    session: Session, *, key_prefix: str, created_from: datetime, created_to: datetime
) -> list[Outcome]:
    """The messages whose idempotency key starts with `key_prefix` (an automation's:
    `automation:<id>:`) written in [created_from, created_to), counted by template, status
    and reason: what the outbox writer decided for them."""
    rows = session.execute(
        select(
            EmailTemplate.name,
            OutboxMessage.status,
            OutboxMessage.reason,
            func.count(),
        )
        .select_from(OutboxMessage)
        .outerjoin(EmailTemplate, EmailTemplate.id == OutboxMessage.template_id)
        .where(
            OutboxMessage.idempotency_key.startswith(key_prefix, autoescape=True),
            OutboxMessage.created_at >= created_from,
            OutboxMessage.created_at < created_to,
        )
        .group_by(EmailTemplate.name, OutboxMessage.status, OutboxMessage.reason)
        .order_by(EmailTemplate.name, OutboxMessage.status, OutboxMessage.reason)
    )
    return [Outcome(name, status, reason, n) for name, status, reason, n in rows]
