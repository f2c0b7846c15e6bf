"""REST: /users (the people who own deals and tasks)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import Field

from tidings.api.deps import ClockDep, SessionDep
from tidings.api.schemas import Id, InputModel
from tidings.deals import users
from tidings.deals.api.common import Orm
from tidings.deals.users import Role

router = APIRouter(tags=["users"])


class UserIn(InputModel):
    email: str = Field(max_length=320)
    name: str = Field(min_length=1, max_length=200)
    role: Role = Role.MEMBER


class UserPatch(InputModel):
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    active: bool | None = None


class UserOut(Orm):
    id: int
    email: str
    name: str
    role: str
    active: bool
    created_at: datetime
    updated_at: datetime


@router.get("/users")
def list_users(session: SessionDep, active: bool | None = None) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in users.list_users(session, active=active)]


@router.post("/users", status_code=201)
def create_user(body: UserIn, session: SessionDep, clock: ClockDep) -> UserOut:
    user = users.create_user(session, body.email, body.name, role=body.role, now=clock.now())
    return UserOut.model_validate(user)


@router.get("/users/{user_id}")
def get_user(user_id: Id, session: SessionDep) -> UserOut:
    return UserOut.model_validate(users.get_user(session, user_id))


@router.patch("/users/{user_id}")
def patch_user(user_id: Id, body: UserPatch, session: SessionDep, clock: ClockDep) -> UserOut:
    user = users.update_user(
        session,
        users.get_user(session, user_id),
        now=clock.now(),
        email=body.email,
        name=body.name,
        role=body.role,
        active=body.active,
    )
    return UserOut.model_validate(user)


@router.post("/users/{user_id}/deactivate")
def deactivate_user(user_id: Id, session: SessionDep, clock: ClockDep) -> UserOut:
    """The user keeps their deals and tasks but can no longer be given new ones."""
    user = users.deactivate_user(session, users.get_user(session, user_id), now=clock.now())
    return UserOut.model_validate(user)
