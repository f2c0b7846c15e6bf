"""/api/3 dealTasks, dealTasktypes, notes and users, through tidings.deals.tasks and
tidings.deals.users. Built-in task types (call, email, meeting, to-do) have no row, so their
ids are their names; user-defined types have numeric ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.activecampaign import deal_shapes
from tidings.activecampaign.bodies import ACModel, OptionalId
from tidings.activecampaign.deps import SessionDep
from tidings.activecampaign.envelopes import id_filter, meta, page
from tidings.activecampaign.errors import ac_json
from tidings.activities.service import Cause
from tidings.api.deps import ClockDep
from tidings.api.schemas import Id
from tidings.auth.service import find_api_key
from tidings.deals import tasks, users
from tidings.deals.models import Note, Task, TaskType, User
from tidings.errors import NotFound, field_error

router = APIRouter()


def _naive_is_utc(value: object) -> object:
    if value == "":
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
        except ValueError:
            return value
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


When = Annotated[datetime | None, BeforeValidator(_naive_is_utc)]


def _type_ids(session: Session) -> dict[str, Any]:
    ids: dict[str, Any] = {name: name for name in tasks.BUILTIN_TYPES}
    ids.update({row.name: row.id for row in session.scalars(select(TaskType))})
    return ids


def _type_name(session: Session, ref: str | int | None) -> str | None:
    if ref is None or ref == "":
        return None
    text = str(ref).strip()
    if text.isdigit() and len(text) <= 18:
        row = session.get(TaskType, int(text))
        if row is None:
            raise field_error("dealTasktype", f"task type {text} does not exist")
        return row.name
    return text  # a name (the built-in types' ids are their names)


class TaskFields(ACModel):
    title: str | None = Field(default=None, max_length=300)
    note: str | None = Field(default=None, max_length=100_000)
    ownerType: str | None = Field(default=None, max_length=20)
    relType: str | None = Field(default=None, max_length=20)
    reltype: str | None = Field(default=None, max_length=20)
    relid: OptionalId = None
    status: int | None = Field(default=None, ge=0, le=1)
    duedate: When = None
    edate: When = None
    dealTasktype: str | int | None = None
    assignee: OptionalId = None


class TaskBody(ACModel):
    dealTask: TaskFields


def _subject(given: TaskFields) -> tuple[int | None, int | None]:
    kind = (given.ownerType or given.relType or given.reltype or "Deal").strip().lower()
    if not given.relid:
        raise field_error("relid", "a task needs the id of its deal or contact (relid)")
    if kind == "deal":
        return given.relid, None
    if kind in ("contact", "subscriber"):
        return None, given.relid
    raise field_error("ownerType", "must be Deal or Contact")


def _task_input(session: Session, given: TaskFields, new: bool) -> tasks.TaskInput:
    item = tasks.TaskInput()
    if new:
        item.deal_id, item.contact_id = _subject(given)
        item.given |= {"deal_id", "contact_id"}
    fields = given.model_fields_set
    for attribute, name in (("title", "title"), ("note", "note")):
        if attribute in fields:
            setattr(item, name, getattr(given, attribute))
            item.given.add(name)
    if "duedate" in fields or "edate" in fields:
        item.due_at = given.duedate or given.edate
        item.given.add("due_at")
    if "dealTasktype" in fields:
        item.type = _type_name(session, given.dealTasktype)
        item.given.add("type")
    if "assignee" in fields:
        item.assignee_id = given.assignee or None
        item.given.add("assignee_id")
    return item


def _task(session: Session, task_id: int) -> Task:
    row = session.get(Task, task_id)
    if row is None:
        raise NotFound(f"No Result found for DealTask with id {task_id}")
    return row


def _task_answer(session: Session, row: Task, status: int = 200) -> JSONResponse:
    return ac_json({"dealTask": deal_shapes.task(row, _type_ids(session))}, status)


@router.post("/dealTasks")
def create_task(body: TaskBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    now = clock.now()
    row = tasks.create_task(
        session, _task_input(session, body.dealTask, True), now=now, cause=Cause.API
    )
    if body.dealTask.status == 1:
        tasks.set_done(session, row, True, now=now, cause=Cause.API)
    return _task_answer(session, row, 201)


@router.get("/dealTasks/{task_id}")
def get_task(task_id: Id, session: SessionDep) -> JSONResponse:
    return _task_answer(session, _task(session, task_id))


@router.put("/dealTasks/{task_id}")
def update_task(task_id: Id, body: TaskBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    now = clock.now()
    row = tasks.update_task(
        session, _task(session, task_id), _task_input(session, body.dealTask, False), now=now
    )
    if body.dealTask.status is not None:
        tasks.set_done(session, row, body.dealTask.status == 1, now=now, cause=Cause.API)
    return _task_answer(session, row)


@router.delete("/dealTasks/{task_id}")
def delete_task(task_id: Id, session: SessionDep) -> JSONResponse:
    tasks.delete_task(session, _task(session, task_id))
    return ac_json({})


def _done_filter(raw: str) -> Any:
    return Task.done_at.is_not(None) if raw.strip() == "1" else Task.done_at.is_(None)


@router.get("/dealTasks")
def list_tasks(request: Request, session: SessionDep) -> JSONResponse:
    rows, total = page(
        session,
        select(Task),
        request,
        id_column=Task.id,
        filters={
            "relid": id_filter(Task.deal_id, "relid"),
            "deal": id_filter(Task.deal_id, "deal"),
            "contact": id_filter(Task.contact_id, "contact"),
            "assignee": id_filter(Task.assignee_id, "assignee"),
            "status": _done_filter,
            "title": lambda raw: Task.title.ilike("%" + raw.strip() + "%"),
        },
        orders={"duedate": Task.due_at, "cdate": Task.created_at, "title": Task.title},
    )
    ids = _type_ids(session)
    return ac_json({"dealTasks": [deal_shapes.task(r[0], ids) for r in rows], "meta": meta(total)})


class TaskTypeFields(ACModel):
    title: str = Field(max_length=64)


class TaskTypeBody(ACModel):
    dealTasktype: TaskTypeFields


def _builtin(name: str) -> dict[str, Any]:
    return {"id": name, "title": name, "status": "0", "cdate": None, "links": {}, "builtin": True}


@router.get("/dealTasktypes")
def list_task_types(session: SessionDep) -> JSONResponse:
    builtin, rows = tasks.list_task_types(session)
    items = [_builtin(n) for n in builtin] + [deal_shapes.task_type(r) for r in rows]
    return ac_json({"dealTasktypes": items, "meta": meta(len(items))})


@router.post("/dealTasktypes")
def create_task_type(body: TaskTypeBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    row = tasks.create_task_type(session, body.dealTasktype.title, now=clock.now())
    return ac_json({"dealTasktype": deal_shapes.task_type(row)}, 201)


def _task_type(session: Session, type_id: int) -> TaskType:
    row = session.get(TaskType, type_id)
    if row is None:
        raise NotFound(f"No Result found for DealTasktype with id {type_id}")
    return row


@router.get("/dealTasktypes/{type_id}")
def get_task_type(type_id: Id, session: SessionDep) -> JSONResponse:
    return ac_json({"dealTasktype": deal_shapes.task_type(_task_type(session, type_id))})


@router.put("/dealTasktypes/{type_id}")
def rename_task_type(
    type_id: Id, body: TaskTypeBody, session: SessionDep, clock: ClockDep
) -> JSONResponse:
    row = tasks.rename_task_type(
        session, _task_type(session, type_id), body.dealTasktype.title, now=clock.now()
    )
    return ac_json({"dealTasktype": deal_shapes.task_type(row)})


@router.delete("/dealTasktypes/{type_id}")
def delete_task_type(type_id: Id, session: SessionDep) -> JSONResponse:
    tasks.delete_task_type(session, _task_type(session, type_id))
    return ac_json({})


# ---- notes --------------------------------------------------------------------------------


class NoteFields(ACModel):
    note: str | None = Field(default=None, max_length=100_000)
    relid: OptionalId = None
    reltype: str | None = Field(default=None, max_length=20)


class NoteBody(ACModel):
    note: NoteFields


def _note(session: Session, note_id: int) -> Note:
    row = session.get(Note, note_id)
    if row is None:
        raise NotFound(f"No Result found for Note with id {note_id}")
    return row


@router.post("/notes")
def create_note(body: NoteBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    given = body.note
    kind = (given.reltype or "").strip().lower()
    if not given.relid:
        raise field_error("relid", "a note needs the id of its deal or contact (relid)")
    if kind == "deal":
        deal_id, contact_id = given.relid, None
    elif kind in ("subscriber", "contact"):
        deal_id, contact_id = None, given.relid
    else:
        raise field_error(
            "reltype", "must be Deal or Subscriber (notes on other objects are not supported)"
        )
    row = tasks.create_note(
        session,
        given.note or "",
        deal_id=deal_id,
        contact_id=contact_id,
        author_id=None,
        now=clock.now(),
        cause=Cause.API,
    )
    return ac_json({"note": deal_shapes.note(row)}, 201)


@router.get("/notes/{note_id}")
def get_note(note_id: Id, session: SessionDep) -> JSONResponse:
    return ac_json({"note": deal_shapes.note(_note(session, note_id))})


@router.put("/notes/{note_id}")
def update_note(note_id: Id, body: NoteBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    row = tasks.update_note(session, _note(session, note_id), body.note.note or "", now=clock.now())
    return ac_json({"note": deal_shapes.note(row)})


@router.delete("/notes/{note_id}")
def delete_note(note_id: Id, session: SessionDep) -> JSONResponse:
    tasks.delete_note(session, _note(session, note_id))
    return ac_json({})


@router.get("/notes")
def list_notes(request: Request, session: SessionDep) -> JSONResponse:
    rows, total = page(
        session,
        select(Note),
        request,
        id_column=Note.id,
        filters={
            "deal": id_filter(Note.deal_id, "deal"),
            "contact": id_filter(Note.contact_id, "contact"),
        },
        orders={"cdate": Note.created_at, "mdate": Note.updated_at},
    )
    return ac_json({"notes": [deal_shapes.note(r[0]) for r in rows], "meta": meta(total)})


# ---- users --------------------------------------------------------------------------------


class UserFields(ACModel):
    username: str | None = Field(default=None, max_length=320)
    email: str | None = Field(default=None, max_length=320)
    firstName: str | None = Field(default=None, max_length=100)
    lastName: str | None = Field(default=None, max_length=100)


class UserBody(ACModel):
    user: UserFields


def _user(session: Session, user_id: int) -> User:
    row = session.get(User, user_id)
    if row is None:
        raise NotFound(f"No Result found for User with id {user_id}")
    return row


def _name(given: UserFields) -> str | None:
    name = " ".join(p.strip() for p in (given.firstName, given.lastName) if p and p.strip())
    return name or None


@router.get("/users/me")
def me(request: Request, session: SessionDep) -> JSONResponse:
    """The first admin user; with none, the API key itself, as a user without an id."""
    row = session.scalar(select(User).where(User.role == "admin", User.active).order_by(User.id))
    if row is not None:
        return ac_json({"user": deal_shapes.user(row)})
    key = find_api_key(session, request.headers.get("api-token", "").strip())
    name = key.name if key is not None else "api"
    return ac_json(
        {
            "user": {
                "id": None,
                "username": name,
                "email": "",
                "firstName": name,
                "lastName": "",
                "links": {},
            }
        }
    )


@router.post("/users")
def create_user(body: UserBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    given = body.user
    email = given.email or given.username or ""
    row = users.create_user(session, email, _name(given) or email, now=clock.now())
    return ac_json({"user": deal_shapes.user(row)}, 201)


@router.get("/users/email/{email}")
def user_by_email(email: str, session: SessionDep) -> JSONResponse:
    row = session.scalar(select(User).where(User.email == email.strip().lower()))
    if row is None:
        raise NotFound(f"No Result found for User with email {email}")
    return ac_json({"user": deal_shapes.user(row)})


@router.get("/users/username/{username}")
def user_by_username(username: str, session: SessionDep) -> JSONResponse:
    return user_by_email(username, session)


@router.get("/users/{user_id}")
def get_user(user_id: Id, session: SessionDep) -> JSONResponse:
    return ac_json({"user": deal_shapes.user(_user(session, user_id))})


@router.put("/users/{user_id}")
def update_user(user_id: Id, body: UserBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    given = body.user
    row = users.update_user(
        session,
        _user(session, user_id),
        now=clock.now(),
        email=given.email or None,
        name=_name(given),
    )
    return ac_json({"user": deal_shapes.user(row)})


@router.delete("/users/{user_id}")
def delete_user(user_id: Id, session: SessionDep, clock: ClockDep) -> JSONResponse:
    """Deactivated, not deleted: the user keeps their deals and tasks."""
    users.deactivate_user(session, _user(session, user_id), now=clock.now())
    return ac_json({})


@router.get("/users")
def list_users(request: Request, session: SessionDep) -> JSONResponse:
    rows, total = page(
        session,
        select(User),
        request,
        id_column=User.id,
        orders={"email": User.email, "cdate": User.created_at},
    )
    return ac_json({"users": [deal_shapes.user(r[0]) for r in rows], "meta": meta(total)})
