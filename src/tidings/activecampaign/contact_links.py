"""/api/3 contactTags, contactLists, a contact's related lists and its activities. Tags and
list memberships change through the contacts write API: a tag added here writes its
tag_added activity and starts tag-triggered automations; a list a contact left is not
silently joined again (ActiveCampaign's status 1 on an unsubscribed membership is a 422)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import select

from tidings.activecampaign import deal_shapes, related, shapes
from tidings.activecampaign.bodies import AcId, ACModel
from tidings.activecampaign.deps import SessionDep
from tidings.activecampaign.envelopes import ac_id, ac_time, meta, page, unpair
from tidings.activecampaign.errors import ac_json
from tidings.activities.models import Activity
from tidings.activities.service import Cause
from tidings.api.deps import ClockDep
from tidings.api.schemas import Id
from tidings.contacts import service
from tidings.contacts.models import ContactTag, ListMembership, Tag
from tidings.deals import tasks
from tidings.errors import Conflict, NotFound, field_error

router = APIRouter()


class ContactTagFields(ACModel):
    contact: AcId
    tag: int | str = Field(description="the tag's id (a name is accepted too)")


class ContactTagBody(ACModel):
    contactTag: ContactTagFields


class ContactListFields(ACModel):
    contact: AcId
    list: AcId
    status: int


class ContactListBody(ACModel):
    contactList: ContactListFields


def _tag_name(session: Any, ref: int | str) -> str:
    text = str(ref).strip()
    if text.isdigit() and len(text) <= 18:
        row = session.get(Tag, int(text))
        if row is None:
            raise field_error("tag", f"tag {ref} does not exist")
        return str(row.name)
    return text  # a name: created on first use, as /api/v1 does


@router.post("/contactTags")
def add_contact_tag(body: ContactTagBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    given = body.contactTag
    contact = _contact(session, given.contact)
    service.add_tag(
        session, contact, _tag_name(session, given.tag), now=clock.now(), cause=Cause.API
    )
    name = _tag_name(session, given.tag)
    tag_id = session.scalar(select(Tag.id).where(Tag.name == name.strip()))
    row = session.get(ContactTag, (contact.id, tag_id))
    assert row is not None
    return ac_json(
        {"contactTag": shapes.contact_tag(row.contact_id, row.tag_id, row.created_at)}, 201
    )


@router.get("/contactTags/{contact_tag_id}")
def get_contact_tag(contact_tag_id: Id, session: SessionDep) -> JSONResponse:
    contact_id, tag_id = unpair(contact_tag_id)
    row = session.get(ContactTag, (contact_id, tag_id))
    if row is None:
        raise NotFound(f"No Result found for ContactTag with id {contact_tag_id}")
    return ac_json({"contactTag": shapes.contact_tag(row.contact_id, row.tag_id, row.created_at)})


@router.delete("/contactTags/{contact_tag_id}")
def remove_contact_tag(contact_tag_id: Id, session: SessionDep, clock: ClockDep) -> JSONResponse:
    contact_id, tag_id = unpair(contact_tag_id)
    row = session.get(ContactTag, (contact_id, tag_id))
    tag = session.get(Tag, tag_id)
    if row is None or tag is None:
        raise NotFound(f"No Result found for ContactTag with id {contact_tag_id}")
    contact = service.get_contact(session, contact_id)
    service.remove_tag(session, contact, tag.name, now=clock.now(), cause=Cause.API)
    return ac_json({})


def _contact(session: Any, contact_id: int) -> Any:
    try:
        return service.get_contact(session, contact_id)
    except NotFound:
        raise field_error("contact", f"contact {contact_id} does not exist") from None


@router.post("/contactLists")
def update_list_status(body: ContactListBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    """status 1 subscribes, 2 unsubscribes (ActiveCampaign answers 200 here, not 201)."""
    given = body.contactList
    contact = _contact(session, given.contact)
    try:
        mailing_list = service.get_list(session, given.list)
    except NotFound:
        raise field_error("list", f"list {given.list} does not exist") from None
    now = clock.now()
    if given.status == 1:
        try:
            service.subscribe_list(session, contact, mailing_list, now=now, cause=Cause.API)
        except Conflict as exc:
            raise field_error(
                "status", f"{exc.detail} (Tidings never re-subscribes silently)"
            ) from None
    elif given.status == 2:
        service.unsubscribe_list(session, contact, mailing_list, now=now, cause=Cause.API)
    else:
        raise field_error("status", "must be 1 (subscribe) or 2 (unsubscribe)")
    row = session.get(ListMembership, (contact.id, mailing_list.id))
    session.refresh(contact)
    out = (
        shapes.contact_list(row.contact_id, row.list_id, row.status, row.created_at, row.updated_at)
        if row is not None
        else shapes.contact_list(contact.id, mailing_list.id, "unsubscribed", now, now)
    )
    return ac_json({"contacts": [shapes.contact(contact)], "contactList": out})


@router.get("/contacts/{contact_id}/contactTags")
def contact_tags(contact_id: Id, session: SessionDep) -> JSONResponse:
    service.get_contact(session, contact_id)
    items = related.contact_tags(session, contact_id)
    return ac_json({"contactTags": items, "meta": meta(len(items))})


@router.get("/contacts/{contact_id}/contactLists")
def contact_lists(contact_id: Id, session: SessionDep) -> JSONResponse:
    service.get_contact(session, contact_id)
    items = related.contact_lists(session, contact_id)
    return ac_json({"contactLists": items, "meta": meta(len(items))})


@router.get("/contacts/{contact_id}/fieldValues")
def contact_field_values(contact_id: Id, session: SessionDep) -> JSONResponse:
    items = related.field_values(session, service.get_contact(session, contact_id))
    return ac_json({"fieldValues": items, "meta": meta(len(items))})


@router.get("/contacts/{contact_id}/deals")
def contact_deals(contact_id: Id, session: SessionDep) -> JSONResponse:
    service.get_contact(session, contact_id)
    items = related.deals(session, contact_id)
    return ac_json({"deals": items, "meta": meta(len(items))})


@router.get("/contacts/{contact_id}/contactAutomations")
def contact_automations(contact_id: Id, session: SessionDep) -> JSONResponse:
    service.get_contact(session, contact_id)
    items = related.contact_automations(session, contact_id)
    return ac_json({"contactAutomations": items, "meta": meta(len(items))})


@router.get("/contacts/{contact_id}/notes")
def contact_notes(contact_id: Id, session: SessionDep) -> JSONResponse:
    service.get_contact(session, contact_id)
    notes = tasks.note_page(session, deal_id=None, contact_id=contact_id, before_id=None, limit=100)
    return ac_json({"notes": [deal_shapes.note(n) for n in notes], "meta": meta(len(notes))})


@router.get("/contacts/{contact_id}/scoreValues")
def contact_score(contact_id: Id, session: SessionDep) -> JSONResponse:
    contact = service.get_contact(session, contact_id)
    value = {
        "id": ac_id(contact.id),
        "contact": ac_id(contact.id),
        "score": "0",
        "scoreValue": str(contact.score),
    }
    return ac_json({"scoreValues": [value], "meta": meta(1)})


def activity(row: Activity) -> dict[str, Any]:
    return {
        "id": ac_id(row.id),
        "contact": ac_id(row.contact_id),
        "subscriberid": ac_id(row.contact_id),
        "reference_type": row.type,
        "type": row.type,
        "cause": row.cause,
        "tstamp": ac_time(row.occurred_at),
        "deal": ac_id(row.deal_id),
        "data": row.data or {},
    }


@router.get("/activities")
def activities(
    request: Request,
    session: SessionDep,
    contact: Annotated[Id | None, Query()] = None,
    deal: Annotated[Id | None, Query()] = None,
) -> JSONResponse:
    """A contact's (or a deal's) history, newest first."""
    if contact is None and deal is None:
        raise field_error("contact", "give contact (or deal)")
    where = [Activity.contact_id == contact] if contact is not None else [Activity.deal_id == deal]
    rows, total = page(
        session,
        select(Activity).order_by(Activity.id.desc()),
        request,
        id_column=Activity.id,
        extra=where,
    )
    return ac_json({"activities": [activity(r[0]) for r in rows], "meta": meta(total)})
