"""Forgetting deleted contacts' runs (list hygiene, erasure on request): their enrolments and
step history go; the per-step totals (StepCount, counts without contacts) stay."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete
from sqlalchemy.orm import Session

from tidings.automations.models import Enrolment, StepLog
from tidings.db.bulk import in_values


def forget_contacts(session: Session, contact_ids: Sequence[int]) -> int:
    """Delete the runs of these contacts and their history. Returns the runs deleted."""
    if not contact_ids:
        return 0
    session.execute(delete(StepLog).where(in_values(session, StepLog.contact_id, contact_ids)))
    result = session.execute(
        delete(Enrolment).where(in_values(session, Enrolment.contact_id, contact_ids))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
