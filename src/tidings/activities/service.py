"""Writing activities: always inside the transaction that makes the change they describe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, delete, insert
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.db.bulk import in_values, insert_tuples
from tidings.db.hooks import mark_work


class Cause(StrEnum):
    API = "api"
    IMPORT = "import"
    AUTOMATION = "automation"
    TRACKING = "tracking"
    ADMIN = "admin"
    SYSTEM = "system"


class ActivityType(StrEnum):
    CONTACT_CREATED = "contact_created"
    CONTACT_UPDATED = "contact_updated"
    CONTACT_DELETED = "contact_deleted"
    FIELD_CHANGED = "field_changed"
    TAG_ADDED = "tag_added"
    TAG_REMOVED = "tag_removed"
    LIST_SUBSCRIBED = "list_subscribed"
    LIST_UNSUBSCRIBED = "list_unsubscribed"
    STATUS_CHANGED = "status_changed"
    SCORE_CHANGED = "score_changed"


ACTIVITY_COLUMNS = ("contact_id", "type", "cause", "occurred_at", "data")
# Activities of a deal also carry its id (tidings.deals).
DEAL_ACTIVITY_COLUMNS = (*ACTIVITY_COLUMNS, "deal_id")


@dataclass(slots=True)  # not frozen: frozen __init__ costs 3x on the ingest paths
class ActivityRow:
    contact_id: int | None
    type: str
    cause: str
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)


def mark_activities_written(session: Session) -> None:
    """Note that `session` wrote activity rows (however it wrote them): they are work for the
    trigger matcher, so its commit wakes the workers (tidings.db.hooks)."""
    mark_work(session)


def record(
    session: Session,
    contact_id: int | None,
    type: str,
    cause: str,
    occurred_at: datetime,
    data: dict[str, Any] | None = None,
) -> None:
    record_many(session, [ActivityRow(contact_id, type, cause, occurred_at, data or {})])


def record_many(session: Session, rows: Sequence[ActivityRow]) -> None:
    """Insert many activity rows with one executemany."""
    if not rows:
        return
    insert_tuples(
        session,
        Activity.__table__,  # type: ignore[arg-type]
        ACTIVITY_COLUMNS,
        [(r.contact_id, r.type, r.cause, r.occurred_at, r.data) for r in rows],
    )
    mark_activities_written(session)


def record_tuples(
    session: Session, rows: Sequence[tuple[Any, ...]], columns: Sequence[str] = ACTIVITY_COLUMNS
) -> None:
    """record_many for rows already in `columns` order (the engine's hot path)."""
    if not rows:
        return
    insert_tuples(session, Activity.__table__, columns, rows)  # type: ignore[arg-type]
    mark_activities_written(session)


def record_select(session: Session, columns: Sequence[str], rows: Select[*tuple[Any, ...]]) -> None:
    """INSERT ... SELECT of activity rows, `rows` selecting `columns` in order: one statement
    however many rows (set-based writers such as a bulk move of deals)."""
    session.execute(insert(Activity).from_select(list(columns), rows))
    mark_activities_written(session)


def delete_of_contacts(session: Session, contact_ids: Sequence[int]) -> int:
    """Delete every activity of these contacts (list hygiene, erasure on request): the one
    exception to an append-only log. Returns the rows deleted."""
    if not contact_ids:
        return 0
    result = session.execute(
        delete(Activity).where(in_values(session, Activity.contact_id, contact_ids))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
