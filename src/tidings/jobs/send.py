"""The send job: a broadcast to a list or a segment, or one message to one address.

Both go through the outbox in ONE transaction with the run's checkpoint: the broadcast is
created and queued (its recipients keyed `broadcast:<id>:<contact>`) and its id written to the
run's state together, so a run killed before that commit made nothing and its resume makes it
once, and a run killed after it finds the broadcast in its state and does not make another.
The single message is keyed `job:<run id>:to`: the outbox refuses a second row of that key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.config import Settings
from tidings.contacts.emails import InvalidEmail, normalize_email
from tidings.contacts.models import Contact
from tidings.errors import NotFound, ValidationFailed, field_error
from tidings.jobs.common import list_id, segment_where
from tidings.jobs.context import JobContext, Outcome
from tidings.jobs.specs import SendSpec
from tidings.messaging import broadcasts
from tidings.messaging.outbox import queue_email
from tidings.messaging.service import template_by_name
from tidings.segments import service as segments


def _template_id(session: Session, name: str) -> int:
    try:
        return template_by_name(session, name).id
    except NotFound:
        raise NotFound(f"template: template {name!r} does not exist") from None


def _recipient(session: Session, address: str) -> int:
    try:
        email = normalize_email(address)
    except InvalidEmail as exc:
        raise field_error("to", exc.detail) from None
    contact_id = session.scalar(select(Contact.id).where(Contact.email == email))
    if contact_id is None:
        raise NotFound(f"to: no contact has the address {email}")
    return int(contact_id)


def check(session: Session, spec: SendSpec, settings: Settings, now: datetime) -> None:
    _template_id(session, spec.template)
    if spec.list is not None:
        list_id(session, spec.list)
    elif spec.segment is not None:
        segment_where(session, spec.segment, now)
    elif spec.to is not None:
        _recipient(session, spec.to)


def _condition(session: Session, segment: Any) -> Any:
    return segments.resolve(session, segment) if isinstance(segment, str) else segment


def run(ctx: JobContext) -> Outcome:
    spec = ctx.spec
    assert isinstance(spec, SendSpec)
    if "broadcast_id" in ctx.state or "outbox_id" in ctx.state:
        return _done(ctx)
    now = ctx.now()
    with ctx.database.session() as session:
        check(session, spec, ctx.settings, now)
        if spec.to is not None:
            result = queue_email(
                session,
                contact_id=_recipient(session, spec.to),
                template=spec.template,
                message_class=spec.message_class,
                idempotency_key=f"job:{ctx.run_id}:to",
                now=now,
                context=spec.context or None,
                cause=Cause.SYSTEM,
            )
            ctx.read = 1
            if result.queued:
                ctx.written = 1
            else:
                ctx.rejected = 1
                ctx.error(spec.to, result.reason)
            ctx.progress(1, 1)
            ctx.checkpoint(session, outbox_id=result.outbox_id)
            return _done(ctx)
        broadcast = broadcasts.create_broadcast(
            session,
            name=spec.name or f"job run {ctx.run_id}",
            template_id=_template_id(session, spec.template),
            list_id=list_id(session, spec.list) if spec.list else None,
            segment=_condition(session, spec.segment) if spec.segment is not None else None,
            scheduled_at=now,
            now=now,
        )
        queued = broadcasts.queue_broadcast(session, broadcast, now=now)
        ctx.read = ctx.written = queued
        ctx.progress(queued, queued)
        ctx.checkpoint(session, broadcast_id=broadcast.id)
    return _done(ctx)


def _done(ctx: JobContext) -> Outcome:
    if "broadcast_id" in ctx.state:
        return Outcome(f"broadcast {ctx.state['broadcast_id']} queued to {ctx.written} recipients")
    if ctx.written:
        return Outcome(f"message queued (outbox {ctx.state.get('outbox_id')})")
    if not ctx.errors:
        raise ValidationFailed("to: the message was refused")
    return Outcome("message refused")
