"""Email: templates (editor and a preview for a chosen contact), broadcasts (create for a list
or a saved segment, now or at a time; per-status message counts; cancel; each one's page is
`broadcast_page`), the suppressions
(add, remove), and the DKIM TXT record to publish. Writes go through `tidings.messaging`
(service, broadcasts) and `tidings.contacts` (suppressions)."""

from __future__ import annotations

from email.utils import parseaddr
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.api.deps import ClockDep, DatabaseDep, SettingsDep
from tidings.api.schemas import Id
from tidings.config import Settings
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact, MailingList, Suppression
from tidings.errors import TidingsError, ValidationFailed
from tidings.messaging import broadcasts
from tidings.messaging import service as templates
from tidings.messaging.dkim import signer_from_settings
from tidings.messaging.links import LinkSigner
from tidings.messaging.models import Broadcast, EmailTemplate, OutboxMessage
from tidings.segments.models import Segment
from tidings.segments.service import get_segment
from tidings.web.deal_pages import due_time
from tidings.web.security import LoginDep, PageSessionDep, check_csrf
from tidings.web.templating import field_errors, render

router = APIRouter(dependencies=[Depends(check_csrf)])
LATEST = 50


def dkim_record(settings: Settings) -> str | None:
    """The zone-file TXT line to publish, or None when no DKIM key is configured."""
    domain = settings.dkim_domain or parseaddr(settings.mail_from)[1].rpartition("@")[2]
    signer = signer_from_settings(
        domain=domain,
        selector=settings.dkim_selector,
        pem=settings.dkim_private_key,
        pem_file=settings.dkim_private_key_file,
    )
    return signer.zone_record() if signer else None


def message_counts(session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
    """Per broadcast, its outbox messages per status."""
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    for broadcast_id, status, n in session.execute(
        select(OutboxMessage.broadcast_id, OutboxMessage.status, func.count())
        .where(OutboxMessage.broadcast_id.in_(ids))
        .group_by(OutboxMessage.broadcast_id, OutboxMessage.status)
    ):
        counts.setdefault(int(broadcast_id or 0), {})[status] = int(n)
    return counts


def _overview(session: Session, settings: Settings) -> dict[str, Any]:
    rows = list(session.scalars(select(Broadcast).order_by(Broadcast.id.desc()).limit(LATEST)))
    return {
        "templates": list(session.scalars(select(EmailTemplate).order_by(EmailTemplate.name))),
        "template_options": [
            (i, n) for i, n in session.execute(select(EmailTemplate.id, EmailTemplate.name))
        ],
        "broadcasts": rows,
        "counts": message_counts(session, [b.id for b in rows]),
        "lists": [
            (m.id, m.name) for m in session.scalars(select(MailingList).order_by(MailingList.name))
        ],
        "segments": [
            (i, n)
            for i, n in session.execute(select(Segment.id, Segment.name).order_by(Segment.name))
        ],
        "suppressions": list(
            session.scalars(select(Suppression).order_by(Suppression.id.desc()).limit(LATEST))
        ),
        "dkim": dkim_record(settings),
    }


def _email_page(
    request: Request, session: Session, settings: Settings, errors: dict[str, str] | None = None
) -> HTMLResponse:
    context = _overview(session, settings)
    status = 422 if errors else 200
    return render(request, "email.html", context, nav="email", errors=errors, status=status)


@router.get("/admin/email", response_class=HTMLResponse)
def email_page(
    request: Request, login: LoginDep, session: PageSessionDep, settings: SettingsDep
) -> HTMLResponse:
    return _email_page(request, session, settings)


@router.post("/admin/email/broadcasts", response_model=None)
def create_broadcast(
    request: Request,
    login: LoginDep,
    session: PageSessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    name: Annotated[str, Form(max_length=200)] = "",
    template_id: Annotated[int, Form(ge=0, le=2**62)] = 0,
    list_id: Annotated[int, Form(ge=0, le=2**62)] = 0,
    segment_id: Annotated[int, Form(ge=0, le=2**62)] = 0,
    scheduled_at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """A broadcast to a list or a saved segment (its condition, evaluated when queued), sent
    now (blank time) or at the time given (UTC)."""
    try:
        if list_id and segment_id:
            raise ValidationFailed("list_id: choose a list or a segment, not both")
        broadcasts.create_broadcast(
            session,
            name=name,
            template_id=template_id,
            list_id=list_id or None,
            segment=get_segment(session, segment_id).condition if segment_id else None,
            scheduled_at=due_time(scheduled_at, "scheduled_at"),
            now=clock.now(),
        )
    except TidingsError as exc:
        session.rollback()
        return _email_page(request, session, settings, field_errors(exc, "name"))
    return RedirectResponse("/admin/email", status_code=303)


@router.post("/admin/email/broadcasts/{broadcast_id}/cancel", response_model=None)
def cancel_broadcast(
    broadcast_id: Id, login: LoginDep, session: PageSessionDep, clock: ClockDep
) -> Response:
    broadcast = broadcasts.get_broadcast(session, broadcast_id)
    broadcasts.cancel_broadcast(session, broadcast, now=clock.now())
    return RedirectResponse(f"/admin/email/broadcasts/{broadcast_id}", status_code=303)


@router.post("/admin/email/suppressions", response_model=None)
def add_suppression(
    request: Request,
    login: LoginDep,
    session: PageSessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    value: Annotated[str, Form(max_length=320)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Suppress an address, or a whole domain given as '@domain' (as `POST /suppressions`)."""
    try:
        contacts.add_suppression(session, value, now=clock.now(), reason=reason.strip() or None)
    except TidingsError as exc:
        session.rollback()
        return _email_page(request, session, settings, field_errors(exc, "value"))
    return RedirectResponse("/admin/email#h-suppressions", status_code=303)


@router.post("/admin/email/suppressions/{suppression_id}/delete", response_model=None)
def remove_suppression(suppression_id: Id, login: LoginDep, session: PageSessionDep) -> Response:
    contacts.delete_suppression(session, suppression_id)
    return RedirectResponse("/admin/email#h-suppressions", status_code=303)


def _template_page(
    request: Request,
    template: EmailTemplate | None,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    preview: Any = None,
) -> HTMLResponse:
    context = {"template": template, "values": values, "preview": preview}
    status = 422 if errors else 200
    return render(
        request, "email_template.html", context, nav="email", errors=errors, status=status
    )


def _values(template: EmailTemplate | None) -> dict[str, str]:
    if template is None:
        return {
            "name": "",
            "subject": "",
            "html": "<p>Hello {{ contact.first_name }}</p>",
            "text": "",
        }
    return {
        "name": template.name,
        "subject": template.subject,
        "html": template.html,
        "text": template.text or "",
    }


@router.get("/admin/email/templates/new", response_class=HTMLResponse)
def new_template(request: Request, login: LoginDep) -> HTMLResponse:
    return _template_page(request, None, _values(None))


@router.get("/admin/email/templates/{template_id}", response_class=HTMLResponse)
def template_page(
    request: Request, template_id: Id, login: LoginDep, session: PageSessionDep
) -> HTMLResponse:
    template = templates.get_template(session, template_id)
    return _template_page(request, template, _values(template))


@router.post("/admin/email/templates", response_model=None)
def save_template(
    request: Request,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    template_id: Annotated[int, Form(ge=0, le=2**62)] = 0,
    name: Annotated[str, Form(max_length=200)] = "",
    subject: Annotated[str, Form(max_length=2_000)] = "",
    html: Annotated[str, Form(max_length=1_000_000)] = "",
    text: Annotated[str, Form(max_length=1_000_000)] = "",
) -> Response:
    """Create (no id) or update a template; a template error names its part and line."""
    values = {"name": name, "subject": subject, "html": html, "text": text}
    template = templates.get_template(session, template_id) if template_id else None
    try:
        if template is None:
            template = templates.create_template(
                session,
                name=name,
                subject=subject,
                html=html,
                text=text or None,
                variables={},
                track_opens=True,
                track_clicks=True,
                now=clock.now(),
            )
        else:
            changes = {**values, "text": text or None}
            templates.update_template(session, template, changes, now=clock.now())
    except TidingsError as exc:
        session.rollback()
        return _template_page(request, template, values, field_errors(exc, "html"))
    return RedirectResponse(f"/admin/email/templates/{template.id}", status_code=303)


@router.post("/admin/email/templates/{template_id}/preview", response_class=HTMLResponse)
def preview_template(
    request: Request,
    template_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    settings: SettingsDep,
    database: DatabaseDep,
    email: Annotated[str, Form(max_length=320)] = "",
) -> HTMLResponse:
    """The stored template rendered for the contact with this address."""
    template = templates.get_template(session, template_id)
    contact = session.scalar(select(Contact).where(Contact.email == email.strip().lower()))
    if contact is None:
        return _template_page(
            request, template, _values(template), {"email": "no contact with this address"}
        )
    links = LinkSigner.from_settings(settings, database)
    try:
        rendered = templates.render_for(
            template,
            contact,
            links={
                "unsubscribe_url": links.unsubscribe_url(contact.id),
                "preferences_url": links.preferences_url(contact.id),
            },
        )
    except TidingsError as exc:
        return _template_page(request, template, _values(template), field_errors(exc, "email"))
    return _template_page(request, template, _values(template), preview=rendered)
