"""Broadcasts: one campaign to a list or a segment, queued set-wise into the outbox.

Queuing is ONE `INSERT ... SELECT` through the outbox writer (`outbox.queue_many`, plus one
insert of the refusals' activity rows): every recipient gets an outbox row keyed
`broadcast:<id>:<contact id>`, either `queued` or `refused` with the policy's reason, so a
refusal is visible per broadcast and per contact. Running it twice changes nothing (ON
CONFLICT DO NOTHING on the key).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    Subquery,
    case,
    cast,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.activities.service import Cause
from tidings.contacts.models import Contact, ListMembership, MailingList
from tidings.contacts.policy import MessageClass
from tidings.db.dialect import dialect_of
from tidings.errors import Conflict, NotFound, ValidationFailed
from tidings.messaging.models import Broadcast, EmailTemplate, OutboxMessage
from tidings.messaging.outbox import OutboxStatus, queue_many
from tidings.segments.service import compile_checked

SCHEDULED, SENDING, SENT, CANCELLED = "scheduled", "sending", "sent", "cancelled"
PENDING_STATUSES = (
    OutboxStatus.QUEUED,
    OutboxStatus.SENDING,
    OutboxStatus.DELIVERING,
    OutboxStatus.DEFERRED,
)


def create_broadcast(
    session: Session,
    *,
    name: str,
    template_id: int,
    list_id: int | None,
    segment: Any | None,
    scheduled_at: datetime | None,
    now: datetime,
) -> Broadcast:
    if session.get(EmailTemplate, template_id) is None:
        raise NotFound(f"template_id: template {template_id} does not exist")
    if (list_id is None) == (segment is None):
        raise ValidationFailed("list_id: give exactly one of list_id and segment")
    if list_id is not None and session.get(MailingList, list_id) is None:
        raise NotFound(f"list_id: list {list_id} does not exist")
    if segment is not None:
        compile_checked(session, segment, now)  # validated now, evaluated when queued
    if not name.strip():
        raise ValidationFailed("name: must not be empty")
    broadcast = Broadcast(
        name=name.strip(),
        template_id=template_id,
        list_id=list_id,
        segment=segment,
        status=SCHEDULED,
        scheduled_at=scheduled_at or now,
        recipients=0,
        created_at=now,
    )
    session.add(broadcast)
    session.flush()
    return broadcast


def get_broadcast(session: Session, broadcast_id: int) -> Broadcast:
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise NotFound(f"broadcast {broadcast_id} not found")
    return broadcast


def _audience(session: Session, broadcast: Broadcast, now: datetime) -> ColumnElement[bool]:
    if broadcast.list_id is not None:
        return exists().where(
            ListMembership.contact_id == Contact.id,
            ListMembership.list_id == broadcast.list_id,
            ListMembership.status == "active",
        )
    return compile_checked(session, broadcast.segment, now)


def queue_broadcast(session: Session, broadcast: Broadcast, *, now: datetime) -> int:
    """Write the outbox rows of a broadcast (queued or refused). Returns the recipient count."""
    if broadcast.status != SCHEDULED:
        raise Conflict(f"broadcast {broadcast.id} is {broadcast.status}, not scheduled")
    template = session.get(EmailTemplate, broadcast.template_id)
    assert template is not None  # a foreign key that restricts deletes
    key = literal(f"broadcast:{broadcast.id}:") + cast(Contact.id, String)
    queue_many(
        session,
        select(Contact.id, key, Contact.status, Contact.email).where(
            _audience(session, broadcast, now)
        ),
        template=template.name,
        message_class=MessageClass.CAMPAIGN,
        now=now,
        cause=Cause.SYSTEM,
        broadcast_id=broadcast.id,
    )
    count = int(
        session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.broadcast_id == broadcast.id)
        )
        or 0
    )
    broadcast.status = SENDING
    broadcast.queued_at = now
    broadcast.recipients = count
    session.flush()
    return count


def queue_due_broadcasts(session: Session, *, now: datetime) -> list[int]:
    query = (
        select(Broadcast)
        .where(Broadcast.status == SCHEDULED, Broadcast.scheduled_at <= now)
        .order_by(Broadcast.scheduled_at, Broadcast.id)
    )
    query = dialect_of(session).claim(query)  # several senders: one queues each
    due = list(session.scalars(query))
    for broadcast in due:
        queue_broadcast(session, broadcast, now=now)
    return [b.id for b in due]


def cancel_broadcast(session: Session, broadcast: Broadcast, *, now: datetime) -> int:
    """Stop a broadcast: scheduled, or sending (rows not yet handed over are cancelled)."""
    if broadcast.status in (SENT, CANCELLED):
        raise Conflict(f"broadcast {broadcast.id} is already {broadcast.status}")
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.broadcast_id == broadcast.id,
            OutboxMessage.status.in_([OutboxStatus.QUEUED, OutboxStatus.DEFERRED]),
        )
        .values(status=OutboxStatus.REFUSED, reason="broadcast cancelled", updated_at=now)
    )
    broadcast.status = CANCELLED
    session.flush()
    return int(result.rowcount)  # type: ignore[attr-defined]


def stats(session: Session, broadcast: Broadcast) -> dict[str, int]:
    """Messages per status, plus opened and clicked (a message counts once)."""
    counts = {s.value: 0 for s in OutboxStatus}
    counts.update(_by_status(session, broadcast))
    counts["opened"], counts["clicked"] = _engagement(session, broadcast)
    counts["total"] = broadcast.recipients
    _mark_sent_when_drained(session, broadcast, counts)
    return counts


def settle(session: Session, broadcast: Broadcast) -> None:
    """Mark a sending broadcast with nothing left to send as sent (what `stats` does, without
    counting the opens and clicks)."""
    _mark_sent_when_drained(session, broadcast, _by_status(session, broadcast))


def _by_status(session: Session, broadcast: Broadcast) -> dict[str, int]:
    rows = session.execute(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.broadcast_id == broadcast.id)
        .group_by(OutboxMessage.status)
    )
    return {status: int(n) for status, n in rows}


def _mark_sent_when_drained(session: Session, broadcast: Broadcast, counts: dict[str, int]) -> None:
    if broadcast.status == SENDING and not any(counts.get(s, 0) for s in PENDING_STATUSES):
        broadcast.status = SENT
        session.flush()


def _recipients_events(broadcast: Broadcast, types: list[str]) -> list[ColumnElement[bool]]:
    """Conditions on activities: tracking events of `types` (events package) since the
    broadcast was queued, by its recipients. Read from the index of (type, occurred_at,
    machine, contact_id): other people's events are skipped there instead of being read from
    the table to look at their token."""
    assert broadcast.queued_at is not None
    recipients = select(OutboxMessage.contact_id).where(OutboxMessage.broadcast_id == broadcast.id)
    return [
        Activity.type.in_(types),
        Activity.occurred_at >= broadcast.queued_at,
        Activity.contact_id.in_(recipients),
    ]


def _of_broadcast(broadcast: Broadcast, token: Any) -> ColumnElement[bool]:
    """The message token is one of the broadcast's (looked up in the unique index)."""
    return exists().where(
        OutboxMessage.message_id == token, OutboxMessage.broadcast_id == broadcast.id
    )


def tracked(broadcast: Broadcast, types: list[str]) -> list[ColumnElement[bool]]:
    """The conditions on activities for the tracking events of `types` of the broadcast's
    messages: those that carry one of its messages' tokens. Queued first."""
    token = Activity.data["message_id"].as_string()
    return [*_recipients_events(broadcast, types), _of_broadcast(broadcast, token)]


def engaged_messages(broadcast: Broadcast) -> Subquery | None:
    """Per message of the broadcast that a person opened or clicked: its token, when it was
    first opened and first clicked (NULL if never), from the tracking activities (events
    package) that carry the message's token. Machine opens (privacy proxies, scanners) are not
    counted; a click counts as an open too (images may be off). None before it is queued."""
    if broadcast.queued_at is None:
        return None
    token = Activity.data["message_id"].as_string()
    clicked_at = case((Activity.type == "link_clicked", Activity.occurred_at))
    # Grouped by token first, then the tokens checked: one lookup per message, not per event.
    per_token = (
        select(
            token.label("token"),
            func.min(Activity.occurred_at).label("opened_at"),
            func.min(clicked_at).label("clicked_at"),
        )
        .where(
            *_recipients_events(broadcast, ["email_opened", "link_clicked"]),
            Activity.machine.is_(False),
        )
        .group_by(token)
        .subquery("per_token")
    )
    return select(per_token).where(_of_broadcast(broadcast, per_token.c.token)).subquery("engaged")


def _engagement(session: Session, broadcast: Broadcast) -> tuple[int, int]:
    """Messages opened and clicked (each counts once)."""
    engaged = engaged_messages(broadcast)
    if engaged is None:
        return 0, 0
    opened, clicked = session.execute(
        select(func.count(engaged.c.opened_at), func.count(engaged.c.clicked_at))
    ).one()
    return int(opened), int(clicked)
