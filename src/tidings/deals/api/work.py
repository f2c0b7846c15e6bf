"""REST: /tasks, /task-types and /notes (on a deal or on a contact)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, Field

from tidings.activities.service import Cause
from tidings.api.deps import ClockDep, SessionDep
from tidings.api.pagination import DEFAULT_LIMIT, decode_cursor, encode_cursor
from tidings.api.schemas import Id, InputModel
from tidings.deals import tasks
from tidings.deals.api.common import IdQuery, LimitQuery, Orm
from tidings.deals.models import Task
from tidings.deals.tasks import TaskFilter, TaskInput
from tidings.errors import field_error

router = APIRouter()


class TaskIn(InputModel):
    type: str = Field(default="to-do", max_length=64)
    title: str = Field(max_length=tasks.MAX_TITLE)
    note: str | None = Field(default=None, max_length=tasks.MAX_BODY)
    due_at: AwareDatetime | None = None
    assignee_id: Id | None = None
    deal_id: Id | None = None
    contact_id: Id | None = None


class TaskPatch(InputModel):
    type: str | None = Field(default=None, max_length=64)
    title: str | None = Field(default=None, max_length=tasks.MAX_TITLE)
    note: str | None = Field(default=None, max_length=tasks.MAX_BODY)
    due_at: AwareDatetime | None = None
    assignee_id: Id | None = None


class TaskOut(Orm):
    id: int
    type: str
    title: str
    note: str | None
    due_at: datetime | None
    assignee_id: int | None
    done: bool
    done_at: datetime | None
    deal_id: int | None
    contact_id: int | None
    created_at: datetime
    updated_at: datetime


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None


class TaskTypeIn(InputModel):
    name: str = Field(min_length=1, max_length=64)


class TaskTypeOut(BaseModel):
    id: int | None = Field(description="null for a built-in type")
    name: str
    builtin: bool


class NoteIn(InputModel):
    body: str = Field(max_length=tasks.MAX_BODY)
    deal_id: Id | None = None
    contact_id: Id | None = None
    author_id: Id | None = None


class NotePatch(InputModel):
    body: str = Field(max_length=tasks.MAX_BODY)


class NoteOut(Orm):
    id: int
    body: str
    author_id: int | None
    deal_id: int | None
    contact_id: int | None
    created_at: datetime
    updated_at: datetime


class NotePage(BaseModel):
    items: list[NoteOut]
    next_cursor: str | None


def _task_out(task: Task) -> TaskOut:
    return TaskOut.model_validate(
        {
            **{c: getattr(task, c) for c in TaskOut.model_fields if c != "done"},
            "done": task.done_at is not None,
        }
    )


# ---- tasks --------------------------------------------------------------------------------


@router.get("/tasks", tags=["tasks"])
def list_tasks(
    session: SessionDep,
    deal: IdQuery = None,
    contact: IdQuery = None,
    assignee: IdQuery = None,
    done: bool | None = None,
    cursor: str | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> TaskPage:
    where = TaskFilter(deal_id=deal, contact_id=contact, assignee_id=assignee, done=done)
    rows = tasks.task_page(session, where, after_id=decode_cursor(cursor), limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return TaskPage(
        items=[_task_out(t) for t in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )


@router.get("/tasks/overdue", tags=["tasks"])
def overdue_tasks(
    session: SessionDep, clock: ClockDep, assignee: Id, limit: LimitQuery = DEFAULT_LIMIT
) -> list[TaskOut]:
    """A user's open tasks past their due time, the longest overdue first."""
    rows = tasks.overdue_tasks(session, assignee, clock.now(), limit=limit)
    return [_task_out(t) for t in rows]


@router.post("/tasks", status_code=201, tags=["tasks"])
def create_task(body: TaskIn, session: SessionDep, clock: ClockDep) -> TaskOut:
    """A task on a deal (deal_id) or on a contact (contact_id)."""
    item = TaskInput(given=set(body.model_fields_set), **body.model_dump())
    task = tasks.create_task(session, item, now=clock.now(), cause=Cause.API)
    return _task_out(task)


@router.get("/tasks/{task_id}", tags=["tasks"])
def get_task(task_id: Id, session: SessionDep) -> TaskOut:
    return _task_out(tasks.get_task(session, task_id))


@router.patch("/tasks/{task_id}", tags=["tasks"])
def patch_task(task_id: Id, body: TaskPatch, session: SessionDep, clock: ClockDep) -> TaskOut:
    item = TaskInput(given=set(body.model_fields_set), **body.model_dump())
    task = tasks.update_task(session, tasks.get_task(session, task_id), item, now=clock.now())
    return _task_out(task)


@router.post("/tasks/{task_id}/complete", tags=["tasks"])
def complete_task(task_id: Id, session: SessionDep, clock: ClockDep) -> TaskOut:
    task = tasks.get_task(session, task_id)
    return _task_out(tasks.set_done(session, task, True, now=clock.now(), cause=Cause.API))


@router.post("/tasks/{task_id}/reopen", tags=["tasks"])
def reopen_task(task_id: Id, session: SessionDep, clock: ClockDep) -> TaskOut:
    task = tasks.get_task(session, task_id)
    return _task_out(tasks.set_done(session, task, False, now=clock.now(), cause=Cause.API))


@router.delete("/tasks/{task_id}", status_code=204, tags=["tasks"])
def delete_task(task_id: Id, session: SessionDep) -> Response:
    tasks.delete_task(session, tasks.get_task(session, task_id))
    return Response(status_code=204)


# ---- task types ---------------------------------------------------------------------------


@router.get("/task-types", tags=["tasks"])
def list_task_types(session: SessionDep) -> list[TaskTypeOut]:
    builtin, custom = tasks.list_task_types(session)
    return [TaskTypeOut(id=None, name=n, builtin=True) for n in builtin] + [
        TaskTypeOut(id=t.id, name=t.name, builtin=False) for t in custom
    ]


@router.post("/task-types", status_code=201, tags=["tasks"])
def create_task_type(body: TaskTypeIn, session: SessionDep, clock: ClockDep) -> TaskTypeOut:
    row = tasks.create_task_type(session, body.name, now=clock.now())
    return TaskTypeOut(id=row.id, name=row.name, builtin=False)


@router.patch("/task-types/{type_id}", tags=["tasks"])
def rename_task_type(
    type_id: Id, body: TaskTypeIn, session: SessionDep, clock: ClockDep
) -> TaskTypeOut:
    """Rename a type; its tasks follow."""
    row = tasks.rename_task_type(
        session, tasks.get_task_type(session, type_id), body.name, now=clock.now()
    )
    return TaskTypeOut(id=row.id, name=row.name, builtin=False)


@router.delete("/task-types/{type_id}", status_code=204, tags=["tasks"])
def delete_task_type(type_id: Id, session: SessionDep) -> Response:
    """Refused (409) while tasks have this type."""
    tasks.delete_task_type(session, tasks.get_task_type(session, type_id))
    return Response(status_code=204)


# ---- notes --------------------------------------------------------------------------------


@router.get("/notes", tags=["notes"])
def list_notes(
    session: SessionDep,
    deal: IdQuery = None,
    contact: IdQuery = None,
    cursor: str | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> NotePage:
    """A deal's or a contact's notes, newest first."""
    if (deal is None) == (contact is None):
        raise field_error("deal", "give either deal or contact")
    rows = tasks.note_page(
        session, deal_id=deal, contact_id=contact, before_id=decode_cursor(cursor), limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return NotePage(
        items=[NoteOut.model_validate(n) for n in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )


@router.post("/notes", status_code=201, tags=["notes"])
def create_note(body: NoteIn, session: SessionDep, clock: ClockDep) -> NoteOut:
    note = tasks.create_note(
        session,
        body.body,
        deal_id=body.deal_id,
        contact_id=body.contact_id,
        author_id=body.author_id,
        now=clock.now(),
        cause=Cause.API,
    )
    return NoteOut.model_validate(note)


@router.get("/notes/{note_id}", tags=["notes"])
def get_note(note_id: Id, session: SessionDep) -> NoteOut:
    return NoteOut.model_validate(tasks.get_note(session, note_id))


@router.patch("/notes/{note_id}", tags=["notes"])
def patch_note(note_id: Id, body: NotePatch, session: SessionDep, clock: ClockDep) -> NoteOut:
    note = tasks.update_note(session, tasks.get_note(session, note_id), body.body, now=clock.now())
    return NoteOut.model_validate(note)


@router.delete("/notes/{note_id}", status_code=204, tags=["notes"])
def delete_note(note_id: Id, session: SessionDep) -> Response:
    tasks.delete_note(session, tasks.get_note(session, note_id))
    return Response(status_code=204)
