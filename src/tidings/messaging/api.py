"""REST endpoints (under /api/v1, authenticated): templates and preview, transactional
messages, broadcasts with per-message status and stats, double opt-in, the bounce webhook."""

from __future__ import annotations

from dataclasses import asdict
from email import message_from_bytes
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.api.deps import (
    ClockDep,
    DatabaseDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    WriteSessionDep,
)
from tidings.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from tidings.api.schemas import Id
from tidings.contacts.emails import InvalidEmail, normalize_email
from tidings.contacts.models import Contact
from tidings.deals.emails import record_reply
from tidings.errors import Conflict, NotFound, ValidationFailed
from tidings.messaging import broadcasts as bc
from tidings.messaging import service
from tidings.messaging.bounce_parse import BounceReport
from tidings.messaging.bounces import BounceParseError, apply_report, parse_bounce
from tidings.messaging.broadcast_report import broadcast_report as build_report
from tidings.messaging.inbound import may_be_reply
from tidings.messaging.links import LinkSigner
from tidings.messaging.models import Broadcast, EmailTemplate, OutboxMessage
from tidings.messaging.outbox import new_message_token, queue_email
from tidings.messaging.personal import referenced_tokens
from tidings.messaging.sandbox import RenderLimits
from tidings.messaging.schemas import (
    BroadcastIn,
    BroadcastOut,
    BroadcastReportOut,
    MessageOut,
    MessagePage,
    OptInIn,
    OptInOut,
    PreviewIn,
    PreviewOut,
    QueueOut,
    TemplateIn,
    TemplateOut,
    TemplatePatch,
    TransactionalIn,
)
from tidings.messaging.subscriptions import request_subscription
from tidings.segments.service import get_segment

router = APIRouter(tags=["email"])
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
MAX_BOUNCE_BYTES = 10 * 1024 * 1024


def _template_out(t: EmailTemplate) -> TemplateOut:
    return TemplateOut.model_validate(t, from_attributes=True)


@router.post("/templates", status_code=201, response_model=TemplateOut)
def create_template(
    body: TemplateIn, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> TemplateOut:
    template = service.create_template(
        session,
        now=clock.now(),
        limits=RenderLimits.from_settings(settings),
        **body.model_dump(),
    )
    return _template_out(template)


@router.get("/templates", response_model=list[TemplateOut])
def list_templates(session: SessionDep) -> list[TemplateOut]:
    return [
        _template_out(t)
        for t in session.scalars(select(EmailTemplate).order_by(EmailTemplate.name))
    ]


@router.get("/templates/{template_id}", response_model=TemplateOut)
def get_template(template_id: Id, session: SessionDep) -> TemplateOut:
    return _template_out(service.get_template(session, template_id))


@router.patch("/templates/{template_id}", response_model=TemplateOut)
def patch_template(
    template_id: Id,
    body: TemplatePatch,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> TemplateOut:
    template = service.get_template(session, template_id)
    changes = body.model_dump(exclude_unset=True)
    for key in ("name", "subject", "html", "track_opens", "track_clicks", "variables"):
        if key in changes and changes[key] is None:
            raise ValidationFailed(f"{key}: may not be null")
    limits = RenderLimits.from_settings(settings)
    return _template_out(
        service.update_template(session, template, changes, now=clock.now(), limits=limits)
    )


@router.delete("/templates/{template_id}", status_code=204)
def delete_template(template_id: Id, session: SessionDep) -> Response:
    template = service.get_template(session, template_id)
    if session.scalar(select(Broadcast.id).where(Broadcast.template_id == template_id).limit(1)):
        raise Conflict(f"template {template_id} is used by a broadcast")
    session.delete(template)
    return Response(status_code=204)


@router.post("/templates/{template_id}/preview", response_model=PreviewOut)
def preview(
    template_id: Id,
    body: PreviewIn,
    session: ReadSessionDep,
    settings: SettingsDep,
    database: DatabaseDep,
) -> PreviewOut:
    template = service.get_template(session, template_id)
    contact = session.get(Contact, body.contact_id)
    if contact is None:
        raise NotFound(f"contact_id: contact {body.contact_id} not found")
    links = LinkSigner.from_settings(settings, database)
    rendered = service.render_for(
        template,
        contact,
        links={
            "unsubscribe_url": links.unsubscribe_url(contact.id),
            "preferences_url": links.preferences_url(contact.id),
        },
        data=body.data,
        limits=RenderLimits.from_settings(settings),
    )
    return PreviewOut(subject=rendered.subject, html=rendered.html, text=rendered.text)


def _contact_id(session: Session, contact_id: int | None, email: str | None) -> int:
    if (contact_id is None) == (email is None):
        raise ValidationFailed("contact_id: give exactly one of contact_id and email")
    if contact_id is not None:
        return contact_id
    try:
        address = normalize_email(email or "")
    except InvalidEmail as exc:
        raise ValidationFailed(f"email: {exc.detail}") from None
    found = session.scalar(select(Contact.id).where(Contact.email == address))
    if found is None:
        raise NotFound(f"email: no contact with address {address}")
    return found


@router.post("/messages/transactional", status_code=202, response_model=QueueOut)
def send_transactional(body: TransactionalIn, session: SessionDep, clock: ClockDep) -> QueueOut:
    """Queue a transactional message. Without an idempotency key every call sends a message."""
    template = service.template_by_name(session, body.template)
    unknown = set(body.data) - set(template.variables or {})
    if unknown:
        raise ValidationFailed(
            f"data: {sorted(unknown)[0]!r} is not a variable of template {template.name!r}"
        )
    contact_id = _contact_id(session, body.contact_id, body.email)
    if session.get(Contact, contact_id) is None:
        raise NotFound(f"contact_id: contact {contact_id} not found")
    key = body.idempotency_key or f"api:{new_message_token()}"
    result = queue_email(
        session,
        contact_id=contact_id,
        template=body.template,
        message_class="transactional",
        idempotency_key=f"transactional:{key}",
        now=clock.now(),
        context=body.data,
        cause=Cause.API,
    )
    return QueueOut(
        queued=result.queued,
        reason=result.reason,
        outbox_id=result.outbox_id,
        duplicate=result.duplicate,
    )


def _message_out(m: OutboxMessage) -> MessageOut:
    return MessageOut.model_validate(m, from_attributes=True)


@router.get("/messages/{message_id}", response_model=MessageOut)
def get_message(message_id: Id, session: SessionDep) -> MessageOut:
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise NotFound(f"message {message_id} not found")
    return _message_out(message)


@router.get("/messages", response_model=MessagePage)
def list_messages(
    session: SessionDep,
    contact_id: Id | None = None,
    broadcast_id: Id | None = None,
    status: str | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> MessagePage:
    """Per-message status, e.g. every refusal of a broadcast with its reason."""
    query = select(OutboxMessage).order_by(OutboxMessage.id).limit(limit)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(OutboxMessage.id > after)
    if contact_id is not None:
        query = query.where(OutboxMessage.contact_id == contact_id)
    if broadcast_id is not None:
        query = query.where(OutboxMessage.broadcast_id == broadcast_id)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    items = list(session.scalars(query))
    next_cursor = encode_cursor(items[-1].id) if len(items) == limit else None
    return MessagePage(items=[_message_out(m) for m in items], next_cursor=next_cursor)


def _broadcast_out(session: Session, b: Broadcast) -> BroadcastOut:
    counts = bc.stats(session, b)
    return BroadcastOut(
        id=b.id,
        name=b.name,
        template_id=b.template_id,
        list_id=b.list_id,
        segment=b.segment,
        status=b.status,
        scheduled_at=b.scheduled_at,
        queued_at=b.queued_at,
        recipients=b.recipients,
        created_at=b.created_at,
        stats=counts,
    )


@router.post("/broadcasts", status_code=201, response_model=BroadcastOut)
def create_broadcast(body: BroadcastIn, session: SessionDep, clock: ClockDep) -> BroadcastOut:
    """Scheduled for `scheduled_at`, or queued at once (in this request) when that is now or
    earlier. Every recipient gets an outbox row: queued, or refused with the reason."""
    segment = body.segment
    if body.segment_id is not None:
        if segment is not None:
            raise ValidationFailed("segment_id: give segment_id or segment, not both")
        segment = get_segment(session, body.segment_id).condition
    now = clock.now()
    broadcast = bc.create_broadcast(
        session,
        name=body.name,
        template_id=body.template_id,
        list_id=body.list_id,
        segment=segment,
        scheduled_at=body.scheduled_at,
        now=now,
    )
    if broadcast.scheduled_at <= now:
        bc.queue_broadcast(session, broadcast, now=now)
    return _broadcast_out(session, broadcast)


# The broadcast reads write: a sending broadcast with nothing left to send is marked sent there.
@router.get("/broadcasts", response_model=list[BroadcastOut])
def list_broadcasts(session: WriteSessionDep) -> list[BroadcastOut]:
    rows = session.scalars(select(Broadcast).order_by(Broadcast.id.desc()).limit(MAX_LIMIT))
    return [_broadcast_out(session, b) for b in rows]


@router.get("/broadcasts/{broadcast_id}", response_model=BroadcastOut)
def get_broadcast(broadcast_id: Id, session: WriteSessionDep) -> BroadcastOut:
    return _broadcast_out(session, bc.get_broadcast(session, broadcast_id))


@router.get("/broadcasts/{broadcast_id}/report", response_model=BroadcastReportOut)
def broadcast_report(broadcast_id: Id, session: SessionDep) -> Any:
    """Totals with rates, the engagement series over time, clicks per link and the refusals
    by reason (docs/email.md)."""
    report = build_report(session, bc.get_broadcast(session, broadcast_id))
    return asdict(report)


@router.post("/broadcasts/{broadcast_id}/cancel", response_model=BroadcastOut)
def cancel_broadcast(broadcast_id: Id, session: SessionDep, clock: ClockDep) -> BroadcastOut:
    broadcast = bc.get_broadcast(session, broadcast_id)
    bc.cancel_broadcast(session, broadcast, now=clock.now())
    return _broadcast_out(session, broadcast)


@router.post("/opt-ins", status_code=202, response_model=OptInOut)
def opt_in(
    body: OptInIn,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    database: DatabaseDep,
) -> OptInOut:
    """Subscribe someone to a list; a double-opt-in list sends the confirmation mail first."""
    result = request_subscription(
        session,
        email=body.email,
        list_id=body.list_id,
        now=clock.now(),
        links=LinkSigner.from_settings(settings, database),
        first_name=body.first_name,
        last_name=body.last_name,
    )
    confirmation = None
    if result.confirmation is not None:
        c = result.confirmation
        confirmation = QueueOut(
            queued=c.queued, reason=c.reason, outbox_id=c.outbox_id, duplicate=c.duplicate
        )
    return OptInOut(
        contact_id=result.contact.id, status=result.contact.status, confirmation=confirmation
    )


@router.post("/webhooks/bounce")
async def bounce_webhook(
    request: Request, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> dict[str, Any]:
    """A raw RFC 822 bounce or ARF complaint (Content-Type: message/rfc822 or text/plain)."""
    raw = await request.body()
    if len(raw) > MAX_BOUNCE_BYTES:
        raise ValidationFailed("body: larger than 10 MiB")
    return await run_in_threadpool(_apply_bounce, session, raw, clock.now(), settings)


def _apply_bounce(session: Session, raw: bytes, now: Any, settings: Any) -> dict[str, Any]:
    try:
        report: BounceReport | None = parse_bounce(raw)
    except BounceParseError as exc:
        report, error = None, str(exc)
    message = message_from_bytes(raw)
    if may_be_reply(message, report):  # a reply to a 1:1 deal email, handed over like bounces
        replied = record_reply(session, referenced_tokens(message), message, now=now)
        if replied is not None:
            return {"reply": replied.as_json()}
    if report is None:
        raise ValidationFailed(
            f"body: {error} (nor is it a reply to a sent email: it names none in "
            "In-Reply-To / References)"
        )
    outcome = apply_report(
        session,
        report,
        now=now,
        soft_limit=settings.soft_bounce_limit,
        soft_days=settings.soft_bounce_days,
    )
    return {"report": report.as_json(), "outcome": outcome.as_json()}
