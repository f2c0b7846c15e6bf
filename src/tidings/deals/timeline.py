"""The activity types a deal's changes write, and a deal's timeline.

Every deal activity carries the deal id and, as contact_id, the deal's primary contact (so the
contact's timeline and contact triggers see it). Automations (phase 2 of issue 15) match these
type names and data keys, so they are part of the interface:

| type | data |
|---|---|
| deal_created | pipeline_id, stage_id, status, value, currency, owner_id, title |
| deal_stage_changed | pipeline_id, from_pipeline_id, from_stage_id, to_stage_id |
| deal_status_changed | old, new, lost_reason |
| deal_owner_changed | old, new (user ids; null for none) |
| deal_value_changed | old, new, currency (minor units) |
| deal_field_changed | field, old, new (title, description, currency, expected_close, custom) |
| deal_contacts_changed | old_primary, new_primary, added, removed (contact ids) |
| deal_score_changed | old, new |
| deal_task_created / deal_task_completed | task_id, task_type |
| deal_note_added | note_id |
| deal_deleted | title |
| deal_email_sent | deal_email_id, contact_id, to, subject, outbox_id, owner_id |
| deal_email_replied | deal_email_id, contact_id, to, subject, reply_id, from, reply_subject |

The email activities carry as contact_id the contact the email went to (who may not be the
primary one). Tasks and notes on a contact (not on a deal) write task_created, task_completed
and note_added with the contact's id and no deal id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.activities.service import DEAL_ACTIVITY_COLUMNS, record_tuples


class DealActivity(StrEnum):
    CREATED = "deal_created"
    STAGE_CHANGED = "deal_stage_changed"
    STATUS_CHANGED = "deal_status_changed"
    OWNER_CHANGED = "deal_owner_changed"
    VALUE_CHANGED = "deal_value_changed"
    FIELD_CHANGED = "deal_field_changed"
    CONTACTS_CHANGED = "deal_contacts_changed"
    SCORE_CHANGED = "deal_score_changed"
    TASK_CREATED = "deal_task_created"
    TASK_COMPLETED = "deal_task_completed"
    NOTE_ADDED = "deal_note_added"
    DELETED = "deal_deleted"
    EMAIL_SENT = "deal_email_sent"
    EMAIL_REPLIED = "deal_email_replied"


class ContactWorkActivity(StrEnum):
    """The email activities carry as contact_id the contact the email went to (who may not be the
    primary one). Tasks and notes on a contact rather than on a deal."""

    TASK_CREATED = "task_created"
    TASK_COMPLETED = "task_completed"
    NOTE_ADDED = "note_added"


DealRow = tuple[int | None, str, str, datetime, dict[str, Any], int | None]


def deal_row(
    deal_id: int | None,
    contact_id: int | None,
    type_: str,
    cause: str,
    now: datetime,
    data: dict[str, Any],
) -> DealRow:
    """One activity row in DEAL_ACTIVITY_COLUMNS order."""
    return (contact_id, type_, cause, now, data, deal_id)


def record_rows(session: Session, rows: Sequence[DealRow]) -> None:
    record_tuples(session, rows, DEAL_ACTIVITY_COLUMNS)


def timeline(
    session: Session, deal_id: int, *, before_id: int | None, limit: int
) -> list[Activity]:
    """The deal's activities, newest first (keyset: ids below `before_id`)."""
    query = select(Activity).where(Activity.deal_id == deal_id)
    if before_id is not None:
        query = query.where(Activity.id < before_id)
    return list(session.scalars(query.order_by(Activity.id.desc()).limit(limit)))
