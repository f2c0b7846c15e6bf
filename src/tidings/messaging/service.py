"""Template management and per-contact rendering (preview and send share it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.contacts.models import Contact, CustomField
from tidings.errors import Conflict, NotFound, ValidationFailed
from tidings.messaging.models import EmailTemplate
from tidings.messaging.sandbox import RenderLimits
from tidings.messaging.templates import (
    CompiledTemplate,
    Rendered,
    TemplateSource,
    contact_context,
    coupon_context,
    validate,
)
from tidings.text import refuse_control_characters


def custom_field_keys(session: Session) -> list[str]:
    return list(session.scalars(select(CustomField.key)))


def source_of(template: EmailTemplate) -> TemplateSource:
    return TemplateSource(template.subject, template.html, template.text, template.variables or {})


def _check_name(name: str) -> str:
    refuse_control_characters("name", name)
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 200:
        raise ValidationFailed("name: must be 1 to 200 characters")
    return cleaned


def create_template(
    session: Session,
    *,
    name: str,
    subject: str,
    html: str,
    text: str | None,
    variables: dict[str, Any],
    track_opens: bool,
    track_clicks: bool,
    now: datetime,
    limits: RenderLimits | None = None,
) -> EmailTemplate:
    name = _check_name(name)
    validate(TemplateSource(subject, html, text, variables), custom_field_keys(session), limits)
    if session.scalar(select(EmailTemplate.id).where(EmailTemplate.name == name)) is not None:
        raise Conflict(f"name: a template named {name!r} exists")
    template = EmailTemplate(
        name=name,
        subject=subject,
        html=html,
        text=text,
        variables=variables,
        track_opens=track_opens,
        track_clicks=track_clicks,
        created_at=now,
        updated_at=now,
    )
    session.add(template)
    session.flush()
    return template


def update_template(
    session: Session,
    template: EmailTemplate,
    changes: dict[str, Any],
    *,
    now: datetime,
    limits: RenderLimits | None = None,
) -> EmailTemplate:
    if "name" in changes:
        name = _check_name(changes["name"])
        other = session.scalar(select(EmailTemplate.id).where(EmailTemplate.name == name))
        if other is not None and other != template.id:
            raise Conflict(f"name: a template named {name!r} exists")
        changes["name"] = name
    merged = TemplateSource(
        changes.get("subject", template.subject),
        changes.get("html", template.html),
        changes.get("text", template.text),
        changes.get("variables", template.variables or {}),
    )
    validate(merged, custom_field_keys(session), limits)
    for key, value in changes.items():
        setattr(template, key, value)
    template.updated_at = now
    session.flush()
    return template


def get_template(session: Session, template_id: int) -> EmailTemplate:
    template = session.get(EmailTemplate, template_id)
    if template is None:
        raise NotFound(f"template {template_id} not found")
    return template


def template_by_name(session: Session, name: str) -> EmailTemplate:
    template = session.scalar(select(EmailTemplate).where(EmailTemplate.name == name))
    if template is None:
        raise NotFound(f"template: {name!r} not found")
    return template


def render_for(
    template: EmailTemplate,
    contact: Contact,
    *,
    links: dict[str, str],
    data: dict[str, Any] | None = None,
    limits: RenderLimits | None = None,
) -> Rendered:
    unknown = set(data or {}) - set(template.variables or {})
    if unknown:
        raise ValidationFailed(
            f"data: {sorted(unknown)[0]!r} is not a variable of template {template.name!r}"
        )
    compiled = CompiledTemplate(source_of(template), limits)
    values = contact_context(contact)
    return compiled.render(
        {**(data or {}), **links, "contact": values, "coupon": coupon_context(values)}
    )
