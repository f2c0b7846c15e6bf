"""Erasing a contact on request (GDPR art. 17): its row, tags, memberships, fields and every
activity go; its address stays only as a SHA-256 hash in the suppression list, so no import
or API call creates it again. Other owners forget the contact in the same transaction (the
caller, tidings.jobs.hygiene, asks automations and messaging)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.activities.service import delete_of_contacts
from tidings.contacts.emails import InvalidEmail, normalize_email
from tidings.contacts.models import Contact
from tidings.contacts.suppressions import suppress_erased
from tidings.contacts.writes import delete_contacts
from tidings.errors import field_error


def contact_to_erase(session: Session, address: str) -> tuple[str, int | None]:
    """The normalized address and its contact's id (None: no contact has it now)."""
    try:
        email = normalize_email(address)
    except InvalidEmail as exc:
        raise field_error("email", exc.detail) from None
    return email, session.scalar(select(Contact.id).where(Contact.email == email))


def erase_contact(session: Session, address: str, *, now: datetime, cause: str) -> int:
    """Erase the contact of `address` (if there is one) and suppress the address's hash.
    Returns the contacts erased (0 or 1). Idempotent."""
    email, contact_id = contact_to_erase(session, address)
    erased = 0
    if contact_id is not None:
        delete_of_contacts(session, [contact_id])
        erased = len(delete_contacts(session, [contact_id], cause=cause, now=now, anonymous=True))
        # The contact_deleted row just written holds no data; erasure leaves not even that.
        delete_of_contacts(session, [contact_id])
    suppress_erased(session, email, now=now, reason="erased on request")
    return erased
