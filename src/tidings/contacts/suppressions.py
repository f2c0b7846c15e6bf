"""The suppression list (SPEC C4): addresses and whole domains never to be mailed, whatever
the contact's status. Checked at send time through `repository.suppressed_condition`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from tidings.contacts import repository
from tidings.contacts.emails import InvalidEmail, normalize_email
from tidings.contacts.models import Suppression
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
