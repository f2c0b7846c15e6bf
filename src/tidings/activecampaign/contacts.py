"""/api/3 contacts: create, contact/sync (upsert by email), get with side-loads, update,
delete, list with email/listid/tagid/search/filters; all writes through the contacts write
API (tidings.contacts.service), so activities, triggers and the sending policy apply as for
/api/v1."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from tidings.activecampaign import shapes
from tidings.activecampaign.bodies import ACModel
from tidings.activecampaign.deps import SessionDep
from tidings.activecampaign.envelopes import (
    id_filter,
    int_param,
    meta,
    page,
    time_filter,
)
from tidings.activecampaign.errors import ac_json
from tidings.activecampaign.related import side_loads
from tidings.activities.service import Cause
from tidings.api.deps import ClockDep
from tidings.api.schemas import Id
from tidings.contacts import service
from tidings.contacts.models import Contact, ContactTag, CustomField, ListMembership
from tidings.errors import Conflict, ValidationFailed, field_error

router = APIRouter()


class FieldValueIn(ACModel):
    field: str | int = Field(description="the field's id (or its personalisation tag)")
    value: Any = None


class ContactFields(ACModel):
    email: str | None = Field(default=None, max_length=320)
    firstName: str | None = Field(default=None, max_length=200)
    lastName: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=64)
    fieldValues: list[FieldValueIn] = Field(default_factory=list, max_length=500)


class ContactBody(ACModel):
    contact: ContactFields


def field_by_ref(session: Session, ref: str | int, where: str) -> CustomField:
    text = str(ref).strip()
    row: CustomField | None = None
    if text.isdigit() and len(text) <= 18:
        row = session.get(CustomField, int(text))
    if row is None and text:
        key = text.strip("%").lower()
        row = session.scalar(select(CustomField).where(CustomField.key == key))
    if row is None:
        raise field_error(where, f"custom field {text!r} does not exist")
    return row


def ac_value(row: CustomField, value: Any) -> Any:
    """ActiveCampaign's text form of a value in Tidings' terms: `||a||b||` is a list."""
    if value is None or value == "":
        return None
    if row.type == "multi_choice" and isinstance(value, str):
        return [v for v in value.split("||") if v]
    return value


def custom_values(session: Session, items: list[FieldValueIn]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for index, item in enumerate(items):
        row = field_by_ref(session, item.field, f"fieldValues[{index}].field")
        values[row.key] = ac_value(row, item.value)
    return values


def _input(session: Session, body: ContactFields) -> service.ContactInput:
    if not body.email:
        raise field_error("email", "an email address is required")
    return service.ContactInput(
        email=body.email,
        first_name=body.firstName,
        last_name=body.lastName,
        phone=body.phone,
        fields={k: v for k, v in custom_values(session, body.fieldValues).items() if v is not None},
    )


def with_field_values(session: Session, contact: Contact, status: int) -> JSONResponse:
    loads = side_loads(session, contact, ("fieldValues",))
    return ac_json({**loads, "contact": shapes.contact(contact)}, status)


@router.post("/contacts")
def create_contact(body: ContactBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    item = _input(session, body.contact)
    try:
        contact = service.create_contact(session, item, now=clock.now(), cause=Cause.API)
    except Conflict as exc:
        raise Conflict(
            "Email address already exists in the system.",
            errors=[{"field": "email", "message": "Email address already exists in the system"}],
        ) from exc
    return with_field_values(session, contact, 201)


@router.post("/contact/sync")
def sync_contact(body: ContactBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    """Create the contact, or update the one with this email (201 created, 200 updated). The
    same upsert as POST /api/v1/contacts/bulk: a status is never changed here."""
    item = _input(session, body.contact)
    report = service.upsert_contacts(session, [item], now=clock.now(), cause=Cause.API)
    if report.rejected:
        raise ValidationFailed(report.rejected[0].reason)
    contact = service.get_contact(session, report.contact_ids[0])
    return with_field_values(session, contact, 201 if report.created else 200)


@router.get("/contacts/{contact_id}")
def get_contact(contact_id: Id, session: SessionDep) -> JSONResponse:
    contact = service.get_contact(session, contact_id)
    loads = side_loads(
        session,
        contact,
        ("contactAutomations", "contactLists", "deals", "fieldValues", "contactTags"),
    )
    return ac_json(
        {
            **loads,
            "contactData": [],
            "geoAddresses": [],
            "geoIps": [],
            "contact": shapes.contact(contact),
        }
    )


@router.put("/contacts/{contact_id}")
def update_contact(
    contact_id: Id, body: ContactBody, session: SessionDep, clock: ClockDep
) -> JSONResponse:
    contact = service.get_contact(session, contact_id)
    given = body.contact
    profile: dict[str, str | None] = {
        attribute: value
        for attribute, value in (
            ("first_name", given.firstName),
            ("last_name", given.lastName),
            ("phone", given.phone),
        )
        if value is not None
    }
    service.update_contact(
        session,
        contact,
        now=clock.now(),
        cause=Cause.API,
        email=given.email or None,
        profile=profile,
        fields=custom_values(session, given.fieldValues) or None,
    )
    return with_field_values(session, contact, 200)


@router.delete("/contacts/{contact_id}")
def delete_contact(contact_id: Id, session: SessionDep, clock: ClockDep) -> JSONResponse:
    contact = service.get_contact(session, contact_id)
    service.delete_contact(session, contact, now=clock.now(), cause=Cause.API)
    return ac_json({})


def _search(raw: str) -> Any:
    pattern = "%" + raw.strip().lower().replace("%", "").replace("_", "") + "%"
    return or_(
        Contact.email.like(pattern),
        Contact.first_name.ilike(pattern),
        Contact.last_name.ilike(pattern),
        Contact.phone.like(pattern),
    )


CONTACT_FILTERS = {
    "created_before": time_filter(Contact.created_at, after=False),
    "created_after": time_filter(Contact.created_at, after=True),
    "updated_before": time_filter(Contact.updated_at, after=False),
    "updated_after": time_filter(Contact.updated_at, after=True),
    "email": lambda raw: Contact.email == raw.strip().lower(),
    "search": _search,
    "id": id_filter(Contact.id, "id"),
}
CONTACT_ORDERS = {
    "id": Contact.id,
    "email": Contact.email,
    "cdate": Contact.created_at,
    "udate": Contact.updated_at,
    "first_name": Contact.first_name,
    "last_name": Contact.last_name,
    "name": Contact.first_name,
    "score": Contact.score,
}


@router.get("/contacts")
def list_contacts(
    request: Request,
    session: SessionDep,
    email: Annotated[str | None, Query(max_length=320)] = None,
    email_like: Annotated[str | None, Query(max_length=320)] = None,
    listid: Annotated[str | None, Query(max_length=20)] = None,
    tagid: Annotated[str | None, Query(max_length=20)] = None,
    search: Annotated[str | None, Query(max_length=320)] = None,
    ids: Annotated[str | None, Query(max_length=2000)] = None,
    status: Annotated[str | None, Query(max_length=3)] = None,
) -> JSONResponse:
    extra = []
    if email:
        extra.append(Contact.email == email.strip().lower())
    if email_like:
        extra.append(Contact.email.like("%" + email_like.strip().lower() + "%"))
    if search:
        extra.append(_search(search))
    if ids:
        wanted = [int_param(i, "ids", minimum=1) for i in ids.split(",") if i.strip()]
        extra.append(Contact.id.in_(wanted))
    if tagid:
        tag_id = int_param(tagid, "tagid", minimum=1)
        extra.append(
            exists().where(ContactTag.contact_id == Contact.id, ContactTag.tag_id == tag_id)
        )
    if listid:
        list_id = int_param(listid, "listid", minimum=1)
        membership = exists().where(
            ListMembership.contact_id == Contact.id, ListMembership.list_id == list_id
        )
        if status not in (None, "", "-1"):
            wanted_status = {"0": "pending", "1": "active", "2": "unsubscribed"}.get(status)
            if wanted_status is None:
                raise field_error("status", "must be -1, 0, 1 or 2")
            membership = membership.where(ListMembership.status == wanted_status)
        extra.append(membership)
    rows, total = page(
        session,
        select(Contact),
        request,
        id_column=Contact.id,
        filters=CONTACT_FILTERS,
        orders=CONTACT_ORDERS,
        extra=extra,
    )
    return ac_json(
        {
            "scoreValues": [],
            "contacts": [shapes.contact(r[0]) for r in rows],
            "meta": meta(total, page_input={"limit": len(rows)}),
        }
    )
