"""Users: the people who own deals and are assigned tasks.

The web admin adds passwords and logins on top of this table (users.password_hash); here a
user is an address, a name, a role and whether they are active. Users are deactivated, never
deleted: their deals and tasks keep naming them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.contacts.emails import InvalidEmail, normalize_email
from tidings.deals.models import User
from tidings.deals.repository import get_row
from tidings.errors import Conflict, NotFound, field_error


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


def _email(raw: str) -> str:
    try:
        return normalize_email(raw)
    except InvalidEmail as exc:
        raise field_error("email", exc.detail) from None


def _name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise field_error("name", "must not be blank")
    return name


def _unique_email(session: Session, email: str, exclude_id: int | None = None) -> None:
    existing = session.scalar(select(User.id).where(User.email == email))
    if existing is not None and existing != exclude_id:
        raise Conflict(f"a user with email {email} already exists")


def create_user(
    session: Session, email: str, name: str, *, role: Role = Role.MEMBER, now: datetime
) -> User:
    address = _email(email)
    _unique_email(session, address)
    user = User(
        email=address,
        name=_name(name),
        role=Role(role).value,
        active=True,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, user_id: int) -> User:
    return get_row(session, User, user_id, "user")


def find_user(session: Session, id_or_email: str) -> User:
    """A user named by id or by email address (the command line's way)."""
    text = id_or_email.strip()
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return get_user(session, int(text))
    user = session.scalar(select(User).where(User.email == _email(id_or_email)))
    if user is None:
        raise NotFound(f"no user with email {id_or_email.strip()}")
    return user


def list_users(session: Session, *, active: bool | None = None) -> Sequence[User]:
    query = select(User).order_by(User.id)
    if active is not None:
        query = query.where(User.active == active)
    return session.scalars(query).all()


def update_user(
    session: Session,
    user: User,
    *,
    now: datetime,
    email: str | None = None,
    name: str | None = None,
    role: Role | None = None,
    active: bool | None = None,
) -> User:
    if email is not None:
        address = _email(email)
        _unique_email(session, address, exclude_id=user.id)
        user.email = address
    if name is not None:
        user.name = _name(name)
    if role is not None:
        user.role = Role(role).value
    if active is not None:
        user.active = active
    user.updated_at = now
    session.flush()
    return user


def deactivate_user(session: Session, user: User, *, now: datetime) -> User:
    """The user keeps their deals and tasks but can no longer be given new ones."""
    return update_user(session, user, now=now, active=False)
