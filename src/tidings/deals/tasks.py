"""Tasks (with their types) and notes, on a deal or on a contact.

Creating or completing a task, and adding a note, writes an activity: on a deal
deal_task_created / deal_task_completed / deal_note_added (with the deal id and its primary
contact), on a contact task_created / task_completed / note_added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from tidings.contacts.models import Contact
from tidings.deals.models import Deal, Note, Task, TaskType, User
from tidings.deals.repository import get_row
from tidings.deals.timeline import ContactWorkActivity, DealActivity, deal_row, record_rows
from tidings.errors import Conflict, field_error

BUILTIN_TYPES = ("call", "email", "meeting", "to-do")
MAX_TITLE = 300
MAX_BODY = 100_000


# ---- task types --------------------------------------------------------------------------


def _type_name(raw: str) -> str:
    name = raw.strip().lower()
    if not name:
        raise field_error("name", "must not be blank")
    if len(name) > 64:
        raise field_error("name", "at most 64 characters")
    return name


def list_task_types(session: Session) -> tuple[list[str], Sequence[TaskType]]:
    """(the built-in type names, the user-defined types)."""
    return list(BUILTIN_TYPES), session.scalars(select(TaskType).order_by(TaskType.name)).all()


def _check_new_type_name(session: Session, name: str, exclude_id: int | None = None) -> None:
    if name in BUILTIN_TYPES:
        raise Conflict(f"{name!r} is a built-in task type")
    clash = session.scalar(select(TaskType.id).where(TaskType.name == name))
    if clash is not None and clash != exclude_id:
        raise Conflict(f"a task type named {name!r} already exists")


def create_task_type(session: Session, name: str, *, now: datetime) -> TaskType:
    cleaned = _type_name(name)
    _check_new_type_name(session, cleaned)
    row = TaskType(name=cleaned, created_at=now)
    session.add(row)
    session.flush()
    return row


def get_task_type(session: Session, type_id: int) -> TaskType:
    return get_row(session, TaskType, type_id, "task type")


def rename_task_type(session: Session, row: TaskType, name: str, *, now: datetime) -> TaskType:
    """Rename a type; its tasks follow (one UPDATE)."""
    cleaned = _type_name(name)
    if cleaned == row.name:
        return row
    _check_new_type_name(session, cleaned, exclude_id=row.id)
    session.execute(
        update(Task)
        .where(Task.type == row.name)
        .values(type=cleaned, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    row.name = cleaned
    session.flush()
    return row


def delete_task_type(session: Session, row: TaskType) -> None:
    if session.scalar(select(exists().where(Task.type == row.name))):
        raise Conflict(f"task type {row.name!r} is used by tasks: change or delete them first")
    session.delete(row)
    session.flush()


def _known_type(session: Session, raw: str) -> str:
    name = raw.strip().lower()
    if name in BUILTIN_TYPES:
        return name
    if session.scalar(select(TaskType.id).where(TaskType.name == name)) is None:
        builtins = ", ".join(BUILTIN_TYPES)
        raise field_error("type", f"unknown task type {raw!r} (built in: {builtins})")
    return name


# ---- where a task or note belongs -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subject:
    """A deal (with its primary contact) or a contact."""

    deal_id: int | None
    contact_id: int | None


def subject_of(session: Session, deal_id: int | None, contact_id: int | None) -> Subject:
    if (deal_id is None) == (contact_id is None):
        raise field_error("deal_id", "give either deal_id or contact_id")
    if deal_id is not None:
        primary = session.execute(select(Deal.contact_id).where(Deal.id == deal_id)).first()
        if primary is None:
            raise field_error("deal_id", f"deal {deal_id} does not exist")
        return Subject(deal_id, primary[0])
    if session.get(Contact, contact_id) is None:
        raise field_error("contact_id", f"contact {contact_id} does not exist")
    return Subject(None, contact_id)


def _record(
    session: Session,
    subject: Subject,
    on_deal: DealActivity,
    on_contact: ContactWorkActivity,
    cause: str,
    now: datetime,
    data: dict[str, object],
) -> None:
    type_ = on_deal if subject.deal_id is not None else on_contact
    record_rows(session, [deal_row(subject.deal_id, subject.contact_id, type_, cause, now, data)])


def _assignee(session: Session, user_id: int | None) -> int | None:
    if user_id is None:
        return None
    user = session.get(User, user_id)
    if user is None:
        raise field_error("assignee_id", f"user {user_id} does not exist")
    if not user.active:
        raise field_error("assignee_id", f"user {user_id} ({user.email}) is deactivated")
    return user_id


def _text(raw: str, name: str, limit: int) -> str:
    text = raw.strip()
    if not text:
        raise field_error(name, "must not be blank")
    if len(text) > limit:
        raise field_error(name, f"at most {limit} characters")
    return text


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise field_error(name, "needs a time zone (e.g. 2026-01-01T09:00:00Z)")
    return value


# ---- tasks --------------------------------------------------------------------------------


@dataclass(slots=True)
class TaskInput:
    given: set[str] = field(default_factory=set)
    type: str | None = None
    title: str | None = None
    note: str | None = None
    due_at: datetime | None = None
    assignee_id: int | None = None
    deal_id: int | None = None
    contact_id: int | None = None


def create_task(session: Session, item: TaskInput, *, now: datetime, cause: str) -> Task:
    subject = subject_of(session, item.deal_id, item.contact_id)
    type_name = _known_type(session, item.type or "to-do")
    task = Task(
        type=type_name,
        title=_text(item.title or "", "title", MAX_TITLE),
        note=item.note,
        due_at=_aware(item.due_at, "due_at"),
        assignee_id=_assignee(session, item.assignee_id),
        deal_id=subject.deal_id,
        contact_id=None if subject.deal_id is not None else subject.contact_id,
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    session.flush()
    data = {"task_id": task.id, "task_type": type_name}
    _record(
        session,
        subject,
        DealActivity.TASK_CREATED,
        ContactWorkActivity.TASK_CREATED,
        cause,
        now,
        data,
    )
    return task


def get_task(session: Session, task_id: int) -> Task:
    return get_row(session, Task, task_id, "task")


def update_task(session: Session, task: Task, item: TaskInput, *, now: datetime) -> Task:
    """Change a task's type, title, note, due time or assignee (not what it is on)."""
    if "deal_id" in item.given or "contact_id" in item.given:
        raise field_error("deal_id", "a task stays on its deal or contact")
    if "type" in item.given and item.type is not None:
        task.type = _known_type(session, item.type)
    if "title" in item.given:
        task.title = _text(item.title or "", "title", MAX_TITLE)
    if "note" in item.given:
        task.note = item.note
    if "due_at" in item.given:
        task.due_at = _aware(item.due_at, "due_at")
    if "assignee_id" in item.given and item.assignee_id != task.assignee_id:
        task.assignee_id = _assignee(session, item.assignee_id)
    task.updated_at = now
    session.flush()
    return task


def set_done(session: Session, task: Task, done: bool, *, now: datetime, cause: str) -> Task:
    """Mark a task done (writing the completed activity) or not done again."""
    if done == (task.done_at is not None):
        return task
    task.done_at = now if done else None
    task.updated_at = now
    session.flush()
    if done:
        subject = subject_of(session, task.deal_id, task.contact_id)
        data = {"task_id": task.id, "task_type": task.type}
        _record(
            session,
            subject,
            DealActivity.TASK_COMPLETED,
            ContactWorkActivity.TASK_COMPLETED,
            cause,
            now,
            data,
        )
    return task


def delete_task(session: Session, task: Task) -> None:
    session.delete(task)
    session.flush()


@dataclass(slots=True)
class TaskFilter:
    deal_id: int | None = None
    contact_id: int | None = None
    assignee_id: int | None = None
    done: bool | None = None
    overdue_at: datetime | None = None  # not done and due before this time


def task_page(
    session: Session, where: TaskFilter, *, after_id: int | None, limit: int
) -> list[Task]:
    query = select(Task)
    if where.deal_id is not None:
        query = query.where(Task.deal_id == where.deal_id)
    if where.contact_id is not None:
        query = query.where(Task.contact_id == where.contact_id)
    if where.assignee_id is not None:
        query = query.where(Task.assignee_id == where.assignee_id)
    if where.done is not None:
        query = query.where(Task.done_at.is_not(None) if where.done else Task.done_at.is_(None))
    if after_id is not None:
        query = query.where(Task.id > after_id)
    return list(session.scalars(query.order_by(Task.id).limit(limit)))


def overdue_tasks(session: Session, assignee_id: int, now: datetime, *, limit: int) -> list[Task]:
    """A user's open tasks whose due time has passed, the longest overdue first."""
    query = (
        select(Task)
        .where(Task.assignee_id == assignee_id, Task.done_at.is_(None), Task.due_at < now)
        .order_by(Task.due_at, Task.id)
        .limit(limit)
    )
    return list(session.scalars(query))


# ---- notes --------------------------------------------------------------------------------


def create_note(
    session: Session,
    body: str,
    *,
    deal_id: int | None,
    contact_id: int | None,
    author_id: int | None,
    now: datetime,
    cause: str,
) -> Note:
    subject = subject_of(session, deal_id, contact_id)
    if author_id is not None and session.get(User, author_id) is None:
        raise field_error("author_id", f"user {author_id} does not exist")
    note = Note(
        body=_text(body, "body", MAX_BODY),
        author_id=author_id,
        deal_id=subject.deal_id,
        contact_id=None if subject.deal_id is not None else subject.contact_id,
        created_at=now,
        updated_at=now,
    )
    session.add(note)
    session.flush()
    _record(
        session,
        subject,
        DealActivity.NOTE_ADDED,
        ContactWorkActivity.NOTE_ADDED,
        cause,
        now,
        {"note_id": note.id},
    )
    return note


def get_note(session: Session, note_id: int) -> Note:
    return get_row(session, Note, note_id, "note")


def update_note(session: Session, note: Note, body: str, *, now: datetime) -> Note:
    note.body = _text(body, "body", MAX_BODY)
    note.updated_at = now
    session.flush()
    return note


def delete_note(session: Session, note: Note) -> None:
    session.delete(note)
    session.flush()


def note_page(
    session: Session,
    *,
    deal_id: int | None,
    contact_id: int | None,
    before_id: int | None,
    limit: int,
) -> list[Note]:
    """Notes, newest first."""
    query = select(Note)
    if deal_id is not None:
        query = query.where(Note.deal_id == deal_id)
    if contact_id is not None:
        query = query.where(Note.contact_id == contact_id)
    if before_id is not None:
        query = query.where(Note.id < before_id)
    return list(session.scalars(query.order_by(Note.id.desc()).limit(limit)))
