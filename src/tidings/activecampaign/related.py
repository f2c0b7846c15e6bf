"""What ActiveCampaign side-loads next to a contact (`GET /contacts/{id}` answers its
contactLists, fieldValues, deals, contactAutomations and contactTags too), shared by the
routes that answer them alone (`/contacts/{id}/contactLists`, ...)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.activecampaign import deal_shapes, shapes
from tidings.automations.models import Enrolment
from tidings.contacts.models import Contact, ContactTag, CustomField, ListMembership
from tidings.deals.models import Deal, DealContact


def contact_lists(session: Session, contact_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(ListMembership)
        .where(ListMembership.contact_id == contact_id)
        .order_by(ListMembership.list_id)
    ).scalars()
    return [
        shapes.contact_list(r.contact_id, r.list_id, r.status, r.created_at, r.updated_at)
        for r in rows
    ]


def contact_tags(session: Session, contact_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(ContactTag).where(ContactTag.contact_id == contact_id).order_by(ContactTag.tag_id)
    ).scalars()
    return [shapes.contact_tag(r.contact_id, r.tag_id, r.created_at) for r in rows]


def field_values(session: Session, contact: Contact) -> list[dict[str, Any]]:
    stored = contact.fields or {}
    if not stored:
        return []
    ids = dict(
        session.execute(
            select(CustomField.key, CustomField.id).where(CustomField.key.in_(sorted(stored)))
        ).all()
    )
    return [
        shapes.field_value(contact.id, ids[key], value, contact)
        for key, value in sorted(stored.items())
        if key in ids
    ]


def deals(session: Session, contact_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Deal)
        .where(Deal.id.in_(select(DealContact.deal_id).where(DealContact.contact_id == contact_id)))
        .order_by(Deal.id)
    )
    return [deal_shapes.deal(r) for r in rows]


def contact_automations(session: Session, contact_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Enrolment).where(Enrolment.contact_id == contact_id).order_by(Enrolment.id)
    )
    return [deal_shapes.contact_automation(r) for r in rows]


def side_loads(session: Session, contact: Contact, names: Iterable[str]) -> dict[str, Any]:
    loaders = {
        "contactLists": lambda: contact_lists(session, contact.id),
        "contactTags": lambda: contact_tags(session, contact.id),
        "fieldValues": lambda: field_values(session, contact),
        "deals": lambda: deals(session, contact.id),
        "contactAutomations": lambda: contact_automations(session, contact.id),
    }
    return {name: loaders[name]() for name in names}
