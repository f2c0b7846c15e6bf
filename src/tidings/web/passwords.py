"""Passwords of users (argon2id): set, check, and the one-time password the CLI prints.

The users table belongs to tidings.deals; its password_hash column is written only here.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.deals.models import User
from tidings.errors import field_error

MIN_LENGTH = 10
MAX_LENGTH = 1024  # argon2 hashes anything, but a megabyte "password" is only a way to burn CPU
_hasher = PasswordHasher()
# Checked against when the address is unknown, so a wrong address costs the same time as a
# wrong password and does not tell which addresses have accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def one_time_password() -> str:
    """A random password to print once (about 120 bits, easy to copy)."""
    return secrets.token_urlsafe(15)


def check_new_password(password: str, *, field: str = "password") -> str:
    if len(password) < MIN_LENGTH:
        raise field_error(field, f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise field_error(field, f"must be at most {MAX_LENGTH} characters")
    return password


def set_password(session: Session, user: User, password: str, *, now: datetime) -> None:
    user.password_hash = _hasher.hash(check_new_password(password))
    user.updated_at = now
    session.flush()


def verify(user: User | None, password: str) -> bool:
    """Whether the password is this (active) user's; always spends one argon2 check."""
    stored = user.password_hash if user is not None and user.active else None
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password[:MAX_LENGTH]) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def upgrade_hash_if_needed(user: User, password: str) -> None:
    """After a successful login: rehash when the argon2 parameters were raised since."""
    if user.password_hash and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)


def anyone_can_log_in(session: Session) -> bool:
    """Whether an active user with a password exists (else `tidings serve` says how to make one)."""
    query = select(func.count()).select_from(User)
    query = query.where(User.active.is_(True), User.password_hash.is_not(None))
    return bool(session.scalar(query))
