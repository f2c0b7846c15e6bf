"""REST endpoints for contacts, tags, lists, custom fields and suppressions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.activities.service import Cause
from tidings.api.deps import ClockDep, SessionDep
from tidings.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from tidings.api.schemas import Id
from tidings.contacts import catalog, repository, service
from tidings.contacts.emails import InvalidEmail, normalize_email
from tidings.contacts.models import Contact, CustomField, MailingList, Suppression, Tag
from tidings.contacts.policy import ContactStatus
from tidings.contacts.ports import DoubleOptIn
from tidings.contacts.schemas import (
    ActivityOut,
    ActivityPage,
    BulkUpsertIn,
    BulkUpsertOut,
    ContactIn,
    ContactOut,
    ContactPage,
    ContactPatch,
    ContactSummary,
    FieldIn,
    FieldOut,
    FieldPatch,
    ListIn,
    ListOut,
    ListPatch,
    MembershipOut,
    RejectedOut,
    StatusChangeIn,
    SubscribeIn,
    SuppressionIn,
    SuppressionOut,
    TagIn,
    TagOut,
    TagPatch,
)
from tidings.errors import ValidationFailed
from tidings.inputs import MAX_ID

router = APIRouter()
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]

# Other packages (events: the engagement summary) add sections to a contact's representation.
contact_extensions: list[Any] = []


def contact_out(session: Session, contact: Contact) -> ContactOut:
    memberships = [
        MembershipOut(list_id=ml.id, list=ml.name, status=lm.status, updated_at=lm.updated_at)
        for ml, lm in repository.list_memberships(session, contact.id)
    ]
    out = ContactOut(
        id=contact.id,
        email=contact.email,
        first_name=contact.first_name,
        last_name=contact.last_name,
        phone=contact.phone,
        status=contact.status,
        score=contact.score,
        fields=contact.fields or {},
        tags=repository.tag_names(session, contact.id),
        lists=memberships,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
    )
    for extend in contact_extensions:
        extend(session, contact, out)
    return out


def _input(body: ContactIn) -> service.ContactInput:
    return service.ContactInput(
        email=body.email,
        first_name=body.first_name,
        last_name=body.last_name,
        phone=body.phone,
        status=body.status.value if body.status else None,
        fields=body.fields,
        tags=body.tags,
        lists=body.lists,
    )


# ---- contacts ---------------------------------------------------------------------------


def _list_id(session: Session, ref: str) -> int | None:
    """The list named `ref`, else the list whose id it is (a name wins: a list may be "2024")."""
    found = repository.list_id_by_name(session, ref)
    if found is None and ref.isascii() and ref.isdigit() and 0 < int(ref) <= MAX_ID:
        found = session.scalar(select(MailingList.id).where(MailingList.id == int(ref)))
    return found


@router.post("/contacts", status_code=201, tags=["contacts"])
def create_contact(body: ContactIn, session: SessionDep, clock: ClockDep) -> ContactOut:
    contact = service.create_contact(session, _input(body), now=clock.now(), cause=Cause.API)
    return contact_out(session, contact)


@router.get("/contacts", tags=["contacts"])
def list_contacts(
    session: SessionDep,
    email: str | None = None,
    tag: str | None = None,
    list_ref: Annotated[
        str | None,
        Query(alias="list", max_length=200, description="A list's name (or its id)."),
    ] = None,
    list_status: Annotated[str | None, Query(pattern="^(active|unsubscribed)$")] = None,
    status: ContactStatus | None = None,
    cursor: str | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> ContactPage:
    if email is not None:
        try:
            email = normalize_email(email)
        except InvalidEmail:
            return ContactPage(items=[], next_cursor=None)
    list_id = None
    if list_ref is not None:
        list_id = _list_id(session, list_ref)
        if list_id is None:  # like an unknown ?tag=: nobody is in it
            return ContactPage(items=[], next_cursor=None)
    query = repository.filtered_contacts(
        email=email,
        tag=tag,
        list_id=list_id,
        list_status=list_status,
        status=status.value if status else None,
    )
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(Contact.id > after)
    rows = list(session.scalars(query.order_by(Contact.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return ContactPage(
        items=[ContactSummary.model_validate(c) for c in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )


@router.post("/contacts/bulk", tags=["contacts"])
def bulk_upsert(body: BulkUpsertIn, session: SessionDep, clock: ClockDep) -> BulkUpsertOut:
    """Create or update up to 10,000 contacts; invalid rows are reported, the rest written."""
    if body.force_resubscribe and not body.reason:
        raise ValidationFailed("reason: required with force_resubscribe")
    report = service.upsert_contacts(
        session,
        [_input(c) for c in body.contacts],
        now=clock.now(),
        cause=Cause.API,
        force_resubscribe=body.force_resubscribe,
        reason=body.reason,
    )
    return BulkUpsertOut(
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        rejected=[
            RejectedOut(index=r.index, email=r.email, reason=r.reason) for r in report.rejected
        ],
        kept_status=[{"email": e, "status": s} for e, s in report.kept_status],
    )


@router.get("/contacts/{contact_id}", tags=["contacts"])
def get_contact(contact_id: Id, session: SessionDep) -> ContactOut:
    return contact_out(session, service.get_contact(session, contact_id))


@router.patch("/contacts/{contact_id}", tags=["contacts"])
def patch_contact(
    contact_id: Id, body: ContactPatch, session: SessionDep, clock: ClockDep
) -> ContactOut:
    contact = service.get_contact(session, contact_id)
    provided = body.model_dump(exclude_unset=True)
    profile: dict[str, str | None] = {
        k: provided[k] for k in ("first_name", "last_name", "phone") if k in provided
    }
    service.update_contact(
        session,
        contact,
        now=clock.now(),
        cause=Cause.API,
        email=provided.get("email"),
        profile=profile,
        fields=provided.get("fields"),
    )
    return contact_out(session, contact)


@router.delete("/contacts/{contact_id}", status_code=204, tags=["contacts"])
def delete_contact(contact_id: Id, session: SessionDep, clock: ClockDep) -> Response:
    service.delete_contact(
        session, service.get_contact(session, contact_id), now=clock.now(), cause=Cause.API
    )
    return Response(status_code=204)


@router.post("/contacts/{contact_id}/status", tags=["contacts"])
def change_status(
    contact_id: Id, body: StatusChangeIn, session: SessionDep, clock: ClockDep
) -> ContactOut:
    contact = service.get_contact(session, contact_id)
    service.change_status(
        session,
        contact,
        body.status.value,
        now=clock.now(),
        cause=Cause.API,
        reason=body.reason,
        force_resubscribe=body.force_resubscribe,
    )
    return contact_out(session, contact)


@router.get("/contacts/{contact_id}/activities", tags=["contacts"])
def contact_activities(
    contact_id: Id,
    session: SessionDep,
    cursor: str | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> ActivityPage:
    """The contact's history (every change, with its cause), newest first."""
    query = select(Activity).where(Activity.contact_id == contact_id)
    before = decode_cursor(cursor)
    if before is not None:
        query = query.where(Activity.id < before)
    rows = list(session.scalars(query.order_by(Activity.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return ActivityPage(
        items=[ActivityOut.model_validate(a) for a in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )


@router.put("/contacts/{contact_id}/tags/{tag}", tags=["contacts"])
def add_tag(contact_id: Id, tag: str, session: SessionDep, clock: ClockDep) -> ContactOut:
    contact = service.get_contact(session, contact_id)
    service.add_tag(session, contact, tag, now=clock.now(), cause=Cause.API)
    return contact_out(session, contact)


@router.delete("/contacts/{contact_id}/tags/{tag}", tags=["contacts"])
def remove_tag(contact_id: Id, tag: str, session: SessionDep, clock: ClockDep) -> ContactOut:
    contact = service.get_contact(session, contact_id)
    service.remove_tag(session, contact, tag, now=clock.now(), cause=Cause.API)
    return contact_out(session, contact)


@router.put("/contacts/{contact_id}/lists/{list_id}", tags=["contacts"])
def subscribe(
    contact_id: Id,
    list_id: Id,
    session: SessionDep,
    clock: ClockDep,
    request: Request,
    body: SubscribeIn | None = None,
) -> ContactOut:
    """Join a list; a double-opt-in list makes the membership (and a contact not yet
    subscribed) `pending` and queues the confirmation mail, as `POST /opt-ins` does."""
    contact = service.get_contact(session, contact_id)
    mailing_list = service.get_list(session, list_id)
    force = body.force_resubscribe if body else False
    if mailing_list.double_opt_in:
        double_opt_in: DoubleOptIn = request.app.state.double_opt_in  # wired by tidings.app
        double_opt_in(
            session,
            contact,
            mailing_list,
            now=clock.now(),
            cause=Cause.API,
            force_resubscribe=force,
        )
    else:
        service.subscribe_list(
            session,
            contact,
            mailing_list,
            now=clock.now(),
            cause=Cause.API,
            force_resubscribe=force,
        )
    return contact_out(session, contact)


@router.delete("/contacts/{contact_id}/lists/{list_id}", tags=["contacts"])
def unsubscribe(contact_id: Id, list_id: Id, session: SessionDep, clock: ClockDep) -> ContactOut:
    contact = service.get_contact(session, contact_id)
    service.unsubscribe_list(
        session, contact, service.get_list(session, list_id), now=clock.now(), cause=Cause.API
    )
    return contact_out(session, contact)


# ---- tags -------------------------------------------------------------------------------


@router.get("/tags", tags=["tags"])
def list_tags(session: SessionDep) -> list[TagOut]:
    return [TagOut.model_validate(t) for t in session.scalars(select(Tag).order_by(Tag.name))]


@router.post("/tags", status_code=201, tags=["tags"])
def create_tag(body: TagIn, session: SessionDep, clock: ClockDep) -> TagOut:
    return TagOut.model_validate(catalog.create_tag(session, body, now=clock.now()))


@router.get("/tags/{tag_id}", tags=["tags"])
def get_tag(tag_id: Id, session: SessionDep) -> TagOut:
    return TagOut.model_validate(catalog.get_row(session, Tag, tag_id, "tag"))


@router.patch("/tags/{tag_id}", tags=["tags"])
def patch_tag(tag_id: Id, body: TagPatch, session: SessionDep) -> TagOut:
    tag = catalog.get_row(session, Tag, tag_id, "tag")
    return TagOut.model_validate(catalog.update_tag(session, tag, body))


@router.delete("/tags/{tag_id}", status_code=204, tags=["tags"])
def delete_tag(tag_id: Id, session: SessionDep) -> Response:
    catalog.delete_tag(session, catalog.get_row(session, Tag, tag_id, "tag"))
    return Response(status_code=204)


# ---- lists ------------------------------------------------------------------------------


@router.get("/lists", tags=["lists"])
def list_lists(session: SessionDep) -> list[ListOut]:
    return [
        ListOut.model_validate(x)
        for x in session.scalars(select(MailingList).order_by(MailingList.name))
    ]


@router.post("/lists", status_code=201, tags=["lists"])
def create_list(body: ListIn, session: SessionDep, clock: ClockDep) -> ListOut:
    return ListOut.model_validate(catalog.create_list(session, body, now=clock.now()))


@router.get("/lists/{list_id}", tags=["lists"])
def get_list(list_id: Id, session: SessionDep) -> ListOut:
    return ListOut.model_validate(service.get_list(session, list_id))


@router.patch("/lists/{list_id}", tags=["lists"])
def patch_list(list_id: Id, body: ListPatch, session: SessionDep) -> ListOut:
    mailing_list = service.get_list(session, list_id)
    return ListOut.model_validate(catalog.update_list(session, mailing_list, body))


@router.delete("/lists/{list_id}", status_code=204, tags=["lists"])
def delete_list(list_id: Id, session: SessionDep) -> Response:
    catalog.delete_list(session, service.get_list(session, list_id))
    return Response(status_code=204)


# ---- custom fields ----------------------------------------------------------------------


@router.get("/fields", tags=["fields"])
def list_fields(session: SessionDep) -> list[FieldOut]:
    return [
        FieldOut.model_validate(f)
        for f in session.scalars(select(CustomField).order_by(CustomField.key))
    ]


@router.post("/fields", status_code=201, tags=["fields"])
def create_field(body: FieldIn, session: SessionDep, clock: ClockDep) -> FieldOut:
    return FieldOut.model_validate(catalog.create_field(session, body, now=clock.now()))


@router.get("/fields/{field_id}", tags=["fields"])
def get_field(field_id: Id, session: SessionDep) -> FieldOut:
    return FieldOut.model_validate(catalog.get_row(session, CustomField, field_id, "field"))


@router.patch("/fields/{field_id}", tags=["fields"])
def patch_field(field_id: Id, body: FieldPatch, session: SessionDep) -> FieldOut:
    row = catalog.get_row(session, CustomField, field_id, "field")
    return FieldOut.model_validate(catalog.update_field(session, row, body))


@router.delete("/fields/{field_id}", status_code=204, tags=["fields"])
def delete_field(field_id: Id, session: SessionDep) -> Response:
    """Delete the definition; values already stored on contacts stay in their history."""
    catalog.delete_field(session, catalog.get_row(session, CustomField, field_id, "field"))
    return Response(status_code=204)


# ---- suppression ------------------------------------------------------------------------


@router.get("/suppressions", tags=["suppressions"])
def list_suppressions(session: SessionDep) -> list[SuppressionOut]:
    rows = session.scalars(select(Suppression).order_by(Suppression.value))
    return [SuppressionOut.model_validate(s) for s in rows]


@router.post("/suppressions", status_code=201, tags=["suppressions"])
def add_suppression(body: SuppressionIn, session: SessionDep, clock: ClockDep) -> SuppressionOut:
    entry = service.add_suppression(session, body.value, now=clock.now(), reason=body.reason)
    return SuppressionOut.model_validate(entry)


@router.delete("/suppressions/{suppression_id}", status_code=204, tags=["suppressions"])
def delete_suppression(suppression_id: Id, session: SessionDep) -> Response:
    service.delete_suppression(session, suppression_id)
    return Response(status_code=204)
