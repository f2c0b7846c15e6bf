"""Shared helpers for messaging tests: contacts and templates in a few lines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tidings.clock import FakeClock
from tidings.contacts.models import Contact
from tidings.db.engine import Database
from tidings.messaging.models import EmailTemplate
from tidings.messaging.outbox import queue_email
from tidings.messaging.service import create_template


def make_contact(
    session: Session, email: str, now: datetime, status: str = "subscribed", **extra: Any
) -> Contact:
    contact = Contact(
        email=email,
        status=status,
        score=0,
        fields=extra.pop("fields", {}),
        created_at=now,
        updated_at=now,
        **extra,
    )
    session.add(contact)
    session.flush()
    return contact


def make_template(
    session: Session, now: datetime, name: str = "welcome", **kw: Any
) -> EmailTemplate:
    values: dict[str, Any] = {
        "subject": "Hello {{ contact.first_name | default('there') }}",
        "html": '<p>Hi {{ contact.first_name | default("there") }}</p>'
        '<p><a href="https://shop.example.com/sale?x=1&amp;y=2">Sale</a></p>'
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
        "text": "Hi {{ contact.first_name | default('there') }}",
        "variables": {},
        "track_opens": True,
        "track_clicks": True,
    }
    values.update(kw)
    return create_template(session, name=name, now=now, **values)


def queue_receipt(database: Database, clock: FakeClock) -> int:
    """One transactional message (template "receipt") to ann@example.org; its outbox id."""
    with database.session() as session:
        contact = make_contact(session, "ann@example.org", clock.now(), first_name="Ann")
        make_template(session, clock.now(), name="receipt")
        result = queue_email(
            session,
            contact_id=contact.id,
            template="receipt",
            message_class="transactional",
            idempotency_key="order-1",
            now=clock.now(),
        )
    assert result.outbox_id is not None
    return result.outbox_id
