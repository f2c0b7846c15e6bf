"""/api/3 tags, lists (+ listGroups), fields (+ fieldRels, field options) and fieldValues,
through tidings.contacts.catalog and the contacts write API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import func, select, true

from tidings.activecampaign import shapes
from tidings.activecampaign.bodies import AcId, ACModel
from tidings.activecampaign.contacts import ac_value, field_by_ref
from tidings.activecampaign.deps import SessionDep
from tidings.activecampaign.envelopes import ac_id, id_filter, meta, page, pair, unpair
from tidings.activecampaign.errors import ac_json
from tidings.activities.service import Cause
from tidings.api.deps import ClockDep
from tidings.api.schemas import Id
from tidings.contacts import catalog, service
from tidings.contacts.fields import FieldType
from tidings.contacts.models import Contact, ContactTag, CustomField, MailingList, Tag
from tidings.contacts.schemas import FieldIn, FieldPatch, ListIn, ListPatch, TagIn, TagPatch
from tidings.errors import NotFound, field_error

router = APIRouter()


# ---- tags ---------------------------------------------------------------------------------


class TagFields(ACModel):
    tag: str | None = Field(default=None, max_length=200)
    tagType: str | None = Field(default=None, max_length=20)
    description: str | None = Field(default=None, max_length=10_000)


class TagBody(ACModel):
    tag: TagFields


def _tag(session: Any, tag_id: int) -> Tag:
    row = session.get(Tag, tag_id)
    if row is None:
        raise NotFound(f"No Result found for Tag with id {tag_id}")
    return row  # type: ignore[no-any-return]


@router.post("/tags")
def create_tag(body: TagBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    if not body.tag.tag or not body.tag.tag.strip():
        raise field_error("tag", "a tag needs a name")
    row = catalog.create_tag(
        session, TagIn(name=body.tag.tag, description=body.tag.description), now=clock.now()
    )
    return ac_json({"tag": shapes.tag(row)}, 201)


@router.get("/tags/{tag_id}")
def get_tag(tag_id: Id, session: SessionDep) -> JSONResponse:
    row = _tag(session, tag_id)
    count = session.scalar(select(func.count()).where(ContactTag.tag_id == tag_id)) or 0
    return ac_json({"tag": shapes.tag(row, count)})


@router.put("/tags/{tag_id}")
def update_tag(tag_id: Id, body: TagBody, session: SessionDep) -> JSONResponse:
    row = _tag(session, tag_id)
    patch = TagPatch.model_validate(
        {
            **({"name": body.tag.tag} if body.tag.tag else {}),
            **({"description": body.tag.description} if body.tag.description is not None else {}),
        }
    )
    return ac_json({"tag": shapes.tag(catalog.update_tag(session, row, patch))})


@router.delete("/tags/{tag_id}")
def delete_tag(tag_id: Id, session: SessionDep) -> JSONResponse:
    catalog.delete_tag(session, _tag(session, tag_id))
    return ac_json({})


@router.get("/tags")
def list_tags(
    request: Request,
    session: SessionDep,
    search: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    extra = [Tag.name.ilike(f"%{search.strip()}%")] if search else []
    rows, total = page(
        session,
        select(Tag),
        request,
        id_column=Tag.id,
        filters={
            "search": lambda raw: Tag.name.ilike(f"%{raw.strip()}%"),
            "tag": lambda raw: Tag.name == raw,
        },
        orders={"tag": Tag.name, "cdate": Tag.created_at},
        extra=extra,
    )
    return ac_json({"tags": [shapes.tag(r[0]) for r in rows], "meta": meta(total)})


# ---- lists --------------------------------------------------------------------------------


class ListFields(ACModel):
    name: str | None = Field(default=None, max_length=200)
    stringid: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    double_optin: bool | None = None


class ListBody(ACModel):
    list: ListFields


def _list(session: Any, list_id: int) -> MailingList:
    try:
        return service.get_list(session, list_id)
    except NotFound:
        raise NotFound(f"No Result found for List with id {list_id}") from None


@router.post("/lists")
def create_list(body: ListBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    given = body.list
    if not given.name or not given.name.strip():
        raise field_error("name", "a list needs a name")
    row = catalog.create_list(
        session,
        ListIn(
            name=given.name, description=given.description, double_opt_in=bool(given.double_optin)
        ),
        now=clock.now(),
    )
    return ac_json({"list": shapes.mailing_list(row)}, 201)


@router.get("/lists/{list_id}")
def get_list(list_id: Id, session: SessionDep) -> JSONResponse:
    return ac_json({"list": shapes.mailing_list(_list(session, list_id))})


@router.put("/lists/{list_id}")
def update_list(list_id: Id, body: ListBody, session: SessionDep) -> JSONResponse:
    given = body.list
    patch = ListPatch.model_validate(
        {
            k: v
            for k, v in (
                ("name", given.name or None),
                ("description", given.description),
                ("double_opt_in", given.double_optin),
            )
            if v is not None
        }
    )
    return ac_json(
        {"list": shapes.mailing_list(catalog.update_list(session, _list(session, list_id), patch))}
    )


@router.delete("/lists/{list_id}")
def delete_list(list_id: Id, session: SessionDep) -> JSONResponse:
    catalog.delete_list(session, _list(session, list_id))
    return ac_json({})


@router.get("/lists")
def list_lists(request: Request, session: SessionDep) -> JSONResponse:
    rows, total = page(
        session,
        select(MailingList),
        request,
        id_column=MailingList.id,
        filters={"name": lambda raw: MailingList.name.ilike(f"%{raw.strip()}%")},
        orders={"name": MailingList.name, "cdate": MailingList.created_at},
    )
    return ac_json({"lists": [shapes.mailing_list(r[0]) for r in rows], "meta": meta(total)})


class ListGroupFields(ACModel):
    listid: AcId
    groupid: AcId


class ListGroupBody(ACModel):
    listGroup: ListGroupFields


@router.post("/listGroups")
def create_list_group(body: ListGroupBody, session: SessionDep) -> JSONResponse:
    """Accepted for compatibility: Tidings has no user groups, every API key sees every list."""
    _list(session, body.listGroup.listid)
    given = body.listGroup
    return ac_json(
        {
            "listGroup": {
                "listid": ac_id(given.listid),
                "groupid": ac_id(given.groupid),
                "id": ac_id(given.listid),
                "links": {},
            }
        },
        201,
    )


# ---- fields -------------------------------------------------------------------------------

# ActiveCampaign's field types -> Tidings'.
TYPES = {
    "text": FieldType.TEXT,
    "textarea": FieldType.TEXT,
    "hidden": FieldType.TEXT,
    "date": FieldType.DATE,
    "datetime": FieldType.DATE,
    "dropdown": FieldType.SINGLE_CHOICE,
    "radio": FieldType.SINGLE_CHOICE,
    "listbox": FieldType.MULTI_CHOICE,
    "checkbox": FieldType.MULTI_CHOICE,
    "number": FieldType.NUMBER,
    "currency": FieldType.NUMBER,
}


class FieldFields(ACModel):
    title: str | None = Field(default=None, max_length=200)
    type: str | None = Field(default=None, max_length=20)
    perstag: str | None = Field(default=None, max_length=64)
    descript: str | None = Field(default=None, max_length=10_000)
    options: list[str] | None = Field(default=None, max_length=500)


class FieldBody(ACModel):
    field: FieldFields


def _key(given: FieldFields) -> str:
    raw = (given.perstag or given.title or "").strip().lower()
    key = "".join(c if c.isascii() and c.isalnum() else "_" for c in raw).strip("_")
    if key and not key[0].isalpha():
        key = "f_" + key
    if not key:
        raise field_error("perstag", "a field needs a title or a personalisation tag")
    return key[:64]


def _field(session: Any, field_id: int) -> CustomField:
    row = session.get(CustomField, field_id)
    if row is None:
        raise NotFound(f"No Result found for Field with id {field_id}")
    return row  # type: ignore[no-any-return]


@router.post("/fields")
def create_field(body: FieldBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    given = body.field
    kind = TYPES.get((given.type or "text").strip().lower())
    if kind is None:
        raise field_error("type", f"{given.type!r} is not one of {', '.join(sorted(TYPES))}")
    options = given.options
    if kind in (FieldType.SINGLE_CHOICE, FieldType.MULTI_CHOICE) and not options:
        options = None
    try:
        spec = FieldIn(key=_key(given), label=given.title, type=kind, options=options)
    except ValueError:
        raise field_error("perstag", "must start with a letter: letters, digits and _") from None
    row = catalog.create_field(session, spec, now=clock.now())
    return ac_json({"field": shapes.field(row)}, 201)


@router.get("/fields/{field_id}")
def get_field(field_id: Id, session: SessionDep) -> JSONResponse:
    row = _field(session, field_id)
    return ac_json(
        {"field": shapes.field(row), "fieldOptions": shapes.field(row)["options"], "fieldRels": []}
    )


@router.put("/fields/{field_id}")
def update_field(field_id: Id, body: FieldBody, session: SessionDep) -> JSONResponse:
    row = _field(session, field_id)
    patch = FieldPatch(label=body.field.title or None, options=body.field.options)
    return ac_json({"field": shapes.field(catalog.update_field(session, row, patch))})


@router.delete("/fields/{field_id}")
def delete_field(field_id: Id, session: SessionDep) -> JSONResponse:
    catalog.delete_field(session, _field(session, field_id))
    return ac_json({})


@router.get("/fields")
def list_fields(request: Request, session: SessionDep) -> JSONResponse:
    rows, total = page(
        session,
        select(CustomField),
        request,
        id_column=CustomField.id,
        orders={"title": CustomField.label, "perstag": CustomField.key},
    )
    fields = [shapes.field(r[0]) for r in rows]
    options = [o for f in fields for o in f["options"]]
    return ac_json(
        {"fieldOptions": options, "fieldRels": [], "fields": fields, "meta": meta(total)}
    )


@router.get("/fields/{field_id}/options")
def field_options(field_id: Id, session: SessionDep) -> JSONResponse:
    options = shapes.field(_field(session, field_id))["options"]
    return ac_json({"fieldOptions": options, "meta": meta(len(options))})


class FieldRelFields(ACModel):
    field: AcId
    relid: int = Field(ge=0)


class FieldRelBody(ACModel):
    fieldRel: FieldRelFields


@router.post("/fieldRels")
def create_field_rel(body: FieldRelBody, session: SessionDep) -> JSONResponse:
    """Accepted: in Tidings every custom field belongs to every list."""
    given = body.fieldRel
    _field(session, given.field)
    rel: dict[str, Any] = {
        "field": ac_id(given.field),
        "relid": str(given.relid),
        "id": ac_id(pair(given.field, given.relid)),
        "links": {},
    }
    return ac_json({"fieldRel": rel}, 201)


class FieldOptionIn(ACModel):
    field: AcId
    label: str | None = Field(default=None, max_length=200)
    value: str | None = Field(default=None, max_length=200)


class FieldOptionsBody(ACModel):
    fieldOptions: list[FieldOptionIn] = Field(min_length=1, max_length=500)


def _add_options(body: FieldOptionsBody, session: Any) -> JSONResponse:
    """Options are appended to each field's (a choice field's values must be among them)."""
    added: list[dict[str, Any]] = []
    for index, item in enumerate(body.fieldOptions):
        row = field_by_ref(session, item.field, f"fieldOptions[{index}].field")
        label = (item.value or item.label or "").strip()
        if not label:
            raise field_error(f"fieldOptions[{index}].value", "an option needs a value")
        options = list(row.options or [])
        if label not in options:
            options.append(label)
            if row.type in ("single_choice", "multi_choice"):
                catalog.update_field(session, row, FieldPatch(options=options))
            else:
                raise field_error(f"fieldOptions[{index}].field", "only a choice field has options")
        added.append(shapes.field_option(row.id, options.index(label), label))
    return ac_json({"fieldOptions": added}, 201)


@router.post("/fieldOption/bulk")
def add_field_option(body: FieldOptionsBody, session: SessionDep) -> JSONResponse:
    return _add_options(body, session)


@router.post("/fieldOptions/bulk")
def add_field_options(body: FieldOptionsBody, session: SessionDep) -> JSONResponse:
    return _add_options(body, session)


# ---- field values -------------------------------------------------------------------------


class FieldValueFields(ACModel):
    contact: AcId
    field: AcId | str
    value: Any = None


class FieldValueBody(ACModel):
    fieldValue: FieldValueFields
    useDefaults: bool | None = None


def _set_value(
    session: Any, contact: Contact, row: CustomField, value: Any, now: Any
) -> JSONResponse:
    service.update_contact(
        session, contact, now=now, cause=Cause.API, fields={row.key: ac_value(row, value)}
    )
    stored = (contact.fields or {}).get(row.key)
    return ac_json(
        {
            "contacts": [shapes.contact(contact)],
            "fieldValue": shapes.field_value(contact.id, row.id, stored, contact),
        }
    )


@router.post("/fieldValues")
def create_field_value(body: FieldValueBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    given = body.fieldValue
    try:
        contact = service.get_contact(session, given.contact)
    except NotFound:
        raise field_error("contact", f"contact {given.contact} does not exist") from None
    row = field_by_ref(session, given.field, "field")
    return _set_value(session, contact, row, given.value, clock.now())


def _value_ids(session: Any, value_id: int) -> tuple[Contact, CustomField]:
    contact_id, field_id = unpair(value_id)
    contact = session.get(Contact, contact_id)
    row = session.get(CustomField, field_id)
    if contact is None or row is None or row.key not in (contact.fields or {}):
        raise NotFound(f"No Result found for FieldValue with id {value_id}")
    return contact, row


@router.get("/fieldValues/{value_id}")
def get_field_value(value_id: Id, session: SessionDep) -> JSONResponse:
    contact, row = _value_ids(session, value_id)
    return ac_json(
        {"fieldValue": shapes.field_value(contact.id, row.id, contact.fields[row.key], contact)}
    )


@router.put("/fieldValues/{value_id}")
def update_field_value(
    value_id: Id, body: FieldValueBody, session: SessionDep, clock: ClockDep
) -> JSONResponse:
    contact, row = _value_ids(session, value_id)
    return _set_value(session, contact, row, body.fieldValue.value, clock.now())


@router.delete("/fieldValues/{value_id}")
def delete_field_value(value_id: Id, session: SessionDep, clock: ClockDep) -> JSONResponse:
    contact, row = _value_ids(session, value_id)
    service.update_contact(
        session, contact, now=clock.now(), cause=Cause.API, fields={row.key: None}
    )
    return ac_json({})


@router.get("/fieldValues")
def list_field_values(request: Request, session: SessionDep) -> JSONResponse:
    """Values of contacts, a page of contacts at a time (filters[fieldid], filters[contactid])."""
    fields = {r.key: r for r in session.scalars(select(CustomField))}
    params = request.query_params
    only_field = params.get("filters[fieldid]")
    contact_filter = {
        "contactid": id_filter(Contact.id, "contactid"),
        "fieldid": lambda raw: true(),  # applied to the values below
    }
    rows, total = page(
        session, select(Contact), request, id_column=Contact.id, filters=contact_filter
    )
    items = []
    for (contact,) in rows:
        for key, value in sorted((contact.fields or {}).items()):
            row = fields.get(key)
            if row is None or (only_field and str(row.id) != only_field.strip()):
                continue
            items.append(shapes.field_value(contact.id, row.id, value, contact))
    return ac_json({"fieldValues": items, "meta": meta(total)})
