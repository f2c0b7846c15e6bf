"""The suppression list (SPEC C4): addresses and whole domains never to be mailed, whatever
the contact's status. Checked at send time through `repository.suppressed_condition`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, literal, select
from sqlalchemy.orm import Session

from tidings.contacts import repository
from tidings.contacts.emails import InvalidEmail, normalize_email
from tidings.contacts.models import Contact, Suppression
from tidings.contacts.repository import ContactIds
from tidings.db.bulk import dialect_insert
from tidings.errors import NotFound, ValidationFailed


def add_suppression(
    session: Session, value: str, *, now: datetime, reason: str | None
) -> Suppression:
    """Suppress an address, or a whole domain given as '@domain'."""
    raw = value.strip().lower()
    if raw.startswith("@"):
        try:
            normalized = "@" + normalize_email("x" + raw).partition("@")[2]
        except InvalidEmail as exc:
            raise ValidationFailed(f"value: not a valid domain: {exc.detail}") from None
    else:
        try:
            normalized = normalize_email(raw)
        except InvalidEmail as exc:
            raise ValidationFailed(f"value: {exc.detail}") from None
    existing = repository.suppression(session, normalized)
    if existing is not None:
        return existing
    entry = Suppression(value=normalized, reason=reason, created_at=now)
    session.add(entry)
    session.flush()
    return entry


def delete_suppression(session: Session, suppression_id: int) -> None:
    result = session.execute(delete(Suppression).where(Suppression.id == suppression_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"suppression {suppression_id} does not exist")


def suppress_contacts(
    session: Session, contacts: ContactIds, *, domains: bool, now: datetime, reason: str | None
) -> int:
    """Suppress the addresses of these contacts - or, with `domains`, their whole domains -
    in ONE `INSERT ... SELECT ... ON CONFLICT DO NOTHING`. Returns the entries added."""
    value = repository.email_domain(Contact.email) if domains else Contact.email
    source = (
        select(value, literal(reason), literal(now, type_=Suppression.created_at.type))
        .where(repository.ids_condition(session, Contact.id, contacts))
        .distinct()
    )
    statement = (
        dialect_insert(session, Suppression.__table__)
        .from_select(["value", "reason", "created_at"], source)
        .on_conflict_do_nothing()
        .returning(Suppression.__table__.c.id)
    )
    return len(session.execute(statement).all())


def suppress_erased(session: Session, email: str, *, now: datetime, reason: str | None) -> None:
    """Keep an erased address only as its hash (repository.erased_value): it is then never
    created again by an import or the API (upsert refuses it)."""
    statement = (
        dialect_insert(session, Suppression.__table__)
        .values(value=repository.erased_value(email), reason=reason, created_at=now)
        .on_conflict_do_nothing()
    )
    session.execute(statement)
