"""Forgetting an erased contact's mail: its outbox rows hold its address (recipient) and what
was sent to it, so erasure on request deletes them (queued ones are then never sent)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete
from sqlalchemy.orm import Session

from tidings.db.bulk import in_values
from tidings.messaging.models import OutboxMessage


def forget_contacts(session: Session, contact_ids: Sequence[int]) -> int:
    """Delete the outbox rows of these contacts. Returns the rows deleted."""
    if not contact_ids:
        return 0
    result = session.execute(
        delete(OutboxMessage).where(in_values(session, OutboxMessage.contact_id, contact_ids))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
