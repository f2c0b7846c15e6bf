"""Custom deal fields: definitions with the types (and the validation) of contact fields."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.contacts.fields import FIELD_KEY, FieldDef, FieldType, check_options
from tidings.deals.models import DealField
from tidings.deals.repository import get_row
from tidings.errors import Conflict, field_error

# A deal's own attributes and the CSV columns: no custom field may take these keys.
STANDARD_KEYS = frozenset(
    {
        "id",
        "title",
        "description",
        "value",
        "currency",
        "contact",
        "contact_id",
        "contacts",
        "contact_ids",
        "owner",
        "owner_id",
        "pipeline",
        "pipeline_id",
        "stage",
        "stage_id",
        "status",
        "position",
        "closed_at",
        "lost_reason",
        "expected_close",
        "fields",
        "score",
        "created_at",
        "updated_at",
    }
)


def field_definitions(session: Session) -> dict[str, FieldDef]:
    rows = session.execute(select(DealField.key, DealField.type, DealField.options))
    return {
        key: FieldDef(key, FieldType(type_), tuple(options or ())) for key, type_, options in rows
    }


def list_fields(session: Session) -> Sequence[DealField]:
    return session.scalars(select(DealField).order_by(DealField.key)).all()


def get_field(session: Session, field_id: int) -> DealField:
    return get_row(session, DealField, field_id, "deal field")


def create_field(
    session: Session,
    key: str,
    type_: FieldType,
    *,
    label: str | None = None,
    options: list[str] | None = None,
    now: datetime,
) -> DealField:
    if not FIELD_KEY.fullmatch(key):
        raise field_error("key", "lower-case letters, digits and _, starting with a letter")
    if key in STANDARD_KEYS:
        raise field_error("key", f"{key!r} is a standard deal attribute")
    if session.scalar(select(DealField.id).where(DealField.key == key)) is not None:
        raise Conflict(f"a deal field with key {key!r} already exists")
    row = DealField(
        key=key,
        label=label or key.replace("_", " ").capitalize(),
        type=FieldType(type_).value,
        options=check_options(FieldType(type_), options),
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def update_field(
    session: Session, row: DealField, *, label: str | None, options: list[str] | None
) -> DealField:
    if label is not None:
        row.label = label
    if options is not None:
        row.options = check_options(FieldType(row.type), options)
    session.flush()
    return row


def delete_field(session: Session, row: DealField) -> None:
    """Delete the definition; values already stored on deals stay in their history."""
    session.delete(row)
    session.flush()
