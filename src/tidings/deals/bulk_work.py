"""Tasks and notes for many deals at once: what automation steps (add task, complete task,
add note) write for a whole batch of runs, with the same activities as one task or note
(tidings.deals.tasks) in a few statements however many deals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from tidings.db.bulk import in_values, insert_returning_ids
from tidings.deals.models import Deal, Note, Task
from tidings.deals.tasks import MAX_BODY, MAX_TITLE, _assignee, _known_type, _text
from tidings.deals.timeline import DealActivity, deal_row, record_rows


@dataclass(frozen=True, slots=True)
class NewTask:
    deal_id: int
    title: str
    due_at: datetime | None
    assignee_id: int | None


def primary_contacts(session: Session, deal_ids: Sequence[int]) -> dict[int, int | None]:
    """Each existing deal's primary contact (None: it has none); missing deals are absent."""
    if not deal_ids:
        return {}
    rows = session.execute(
        select(Deal.id, Deal.contact_id).where(in_values(session, Deal.id, sorted(set(deal_ids))))
    )
    return {int(i): c for i, c in rows}


def add_tasks(
    session: Session,
    tasks: Sequence[NewTask],
    *,
    type_name: str,
    note: str | None,
    now: datetime,
    cause: str,
) -> list[int]:
    """Create tasks of one type on deals (which must exist), with a deal_task_created
    activity each; returns their ids. The type, titles and assignees are checked first
    (ValidationFailed / TidingsError naming the field)."""
    if not tasks:
        return []
    kind = _known_type(session, type_name)
    for assignee in sorted({t.assignee_id for t in tasks if t.assignee_id is not None}):
        _assignee(session, assignee)
    rows = [
        {
            "type": kind,
            "title": _text(t.title, "title", MAX_TITLE),
            "note": note,
            "due_at": t.due_at,
            "assignee_id": t.assignee_id,
            "deal_id": t.deal_id,
            "contact_id": None,
            "done_at": None,
            "created_at": now,
            "updated_at": now,
        }
        for t in tasks
    ]
    ids = insert_returning_ids(session, Task.__table__, rows)  # type: ignore[arg-type]
    contacts = primary_contacts(session, [t.deal_id for t in tasks])
    record_rows(
        session,
        [
            deal_row(
                t.deal_id,
                contacts.get(t.deal_id),
                DealActivity.TASK_CREATED,
                cause,
                now,
                {"task_id": task_id, "task_type": kind},
            )
            for t, task_id in zip(tasks, ids, strict=True)
        ],
    )
    return ids


def complete_tasks(
    session: Session,
    deal_ids: Sequence[int],
    *,
    type_name: str | None,
    title: str | None,
    now: datetime,
    cause: str,
) -> list[tuple[int, int]]:
    """Mark the open tasks of these deals done (only those of a type, or with a title, when
    given), with a deal_task_completed activity each: ONE UPDATE ... RETURNING. Returns
    (task, deal) of the tasks completed."""
    if not deal_ids:
        return []
    where: list[ColumnElement[bool]] = [
        in_values(session, Task.deal_id, sorted(set(deal_ids))),
        Task.done_at.is_(None),
    ]
    if type_name is not None:
        where.append(Task.type == type_name.strip().lower())
    if title is not None:
        where.append(func.lower(Task.title) == title.strip().lower())
    done = [
        (int(t), int(d or 0), str(k))  # deal_id: set, the WHERE names deals
        for t, d, k in session.execute(
            update(Task)
            .where(*where)
            .values(done_at=now, updated_at=now)
            .returning(Task.id, Task.deal_id, Task.type)
            .execution_options(synchronize_session=False)
        )
    ]
    contacts = primary_contacts(session, [d for _, d, _ in done])
    record_rows(
        session,
        [
            deal_row(
                deal_id,
                contacts.get(deal_id),
                DealActivity.TASK_COMPLETED,
                cause,
                now,
                {"task_id": task_id, "task_type": kind},
            )
            for task_id, deal_id, kind in done
        ],
    )
    return [(t, d) for t, d, _ in done]


def add_notes(
    session: Session,
    notes: Sequence[tuple[int, str]],
    *,
    now: datetime,
    cause: str,
) -> list[int]:
    """Add (deal, body) notes, with a deal_note_added activity each; returns their ids."""
    if not notes:
        return []
    rows = [
        {
            "body": _text(body, "body", MAX_BODY),
            "author_id": None,
            "deal_id": deal_id,
            "contact_id": None,
            "created_at": now,
            "updated_at": now,
        }
        for deal_id, body in notes
    ]
    ids = insert_returning_ids(session, Note.__table__, rows)  # type: ignore[arg-type]
    contacts = primary_contacts(session, [d for d, _ in notes])
    record_rows(
        session,
        [
            deal_row(
                deal_id,
                contacts.get(deal_id),
                DealActivity.NOTE_ADDED,
                cause,
                now,
                {"note_id": note_id},
            )
            for (deal_id, _), note_id in zip(notes, ids, strict=True)
        ],
    )
    return ids
