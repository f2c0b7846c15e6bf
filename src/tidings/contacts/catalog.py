"""Tags, lists and custom fields themselves (who has them is tidings.contacts.membership).

Single-row administration from the API: create, rename, describe, delete. No activity rows:
these change no contact (deleting a tag takes it off contacts without history, as it always
did; deleting a list ends its memberships by foreign key).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tidings.contacts import membership, repository
from tidings.contacts.fields import STANDARD_FIELDS, FieldType, check_options
from tidings.contacts.models import CustomField, MailingList, Tag
from tidings.contacts.schemas import FieldIn, FieldPatch, ListIn, ListPatch, TagIn, TagPatch
from tidings.errors import Conflict, NotFound, ValidationFailed


def get_row(session: Session, model: Any, id_: int, what: str) -> Any:
    row = session.get(model, id_)
    if row is None:
        raise NotFound(f"{what} {id_} does not exist")
    return row


def _unique_name(
    session: Session,
    model: type[Tag] | type[MailingList],
    name: str,
    what: str,
    exclude_id: int | None = None,
) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise ValidationFailed("name: must not be blank")
    existing = repository.id_by_name(session, model, cleaned)
    if existing is not None and existing != exclude_id:
        raise Conflict(f"a {what} named {cleaned!r} already exists")
    return cleaned


# ---- tags ---------------------------------------------------------------------------------


def create_tag(session: Session, body: TagIn, *, now: datetime) -> Tag:
    tag = Tag(
        name=_unique_name(session, Tag, body.name, "tag"),
        description=body.description,
        created_at=now,
    )
    session.add(tag)
    session.flush()
    return tag


def update_tag(session: Session, tag: Tag, body: TagPatch) -> Tag:
    if body.name is not None:
        tag.name = _unique_name(session, Tag, body.name, "tag", exclude_id=tag.id)
    if "description" in body.model_fields_set:
        tag.description = body.description
    session.flush()
    return tag


def delete_tag(session: Session, tag: Tag) -> None:
    """Delete a tag and take it off every contact (contact_tags has no foreign keys)."""
    membership.remove_tag_everywhere(session, tag.id)
    session.delete(tag)
    session.flush()


# ---- lists --------------------------------------------------------------------------------


def create_list(session: Session, body: ListIn, *, now: datetime) -> MailingList:
    mailing_list = MailingList(
        name=_unique_name(session, MailingList, body.name, "list"),
        description=body.description,
        double_opt_in=body.double_opt_in,
        created_at=now,
    )
    session.add(mailing_list)
    session.flush()
    return mailing_list


def update_list(session: Session, mailing_list: MailingList, body: ListPatch) -> MailingList:
    if body.name is not None:
        mailing_list.name = _unique_name(
            session, MailingList, body.name, "list", exclude_id=mailing_list.id
        )
    if "description" in body.model_fields_set:
        mailing_list.description = body.description
    if body.double_opt_in is not None:
        mailing_list.double_opt_in = body.double_opt_in
    session.flush()
    return mailing_list


def delete_list(session: Session, mailing_list: MailingList) -> None:
    session.delete(mailing_list)
    session.flush()


# ---- custom fields ------------------------------------------------------------------------


def create_field(session: Session, body: FieldIn, *, now: datetime) -> CustomField:
    if body.key in STANDARD_FIELDS:
        raise ValidationFailed(f"key: {body.key!r} is a standard contact attribute")
    if repository.field_id(session, body.key) is not None:
        raise Conflict(f"a custom field with key {body.key!r} already exists")
    row = CustomField(
        key=body.key,
        label=body.label or body.key.replace("_", " ").capitalize(),
        type=body.type.value,
        options=check_options(body.type, body.options),
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def update_field(session: Session, row: CustomField, body: FieldPatch) -> CustomField:
    if body.label is not None:
        row.label = body.label
    if body.options is not None:
        row.options = check_options(FieldType(row.type), body.options)
    session.flush()
    return row


def delete_field(session: Session, row: CustomField) -> None:
    """Delete the definition; values already stored on contacts stay in their history."""
    session.delete(row)
    session.flush()
