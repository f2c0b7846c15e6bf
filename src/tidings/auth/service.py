"""API keys: random secrets shown once; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.auth.models import ApiKey
from tidings.db.engine import Database
from tidings.errors import NotFound

KEY_PREFIX = "tid_"
UNAUTHORIZED = "a valid API key is required: Authorization: Bearer <key>"
API_KEY_STATE = "api_key_id"  # where a checked request keeps its key's id (request.state)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str, *, now: datetime) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the key itself, which is not stored anywhere."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, key_hash=hash_key(key), prefix=key[:10], created_at=now)
    session.add(row)
    session.flush()
    return row, key


def find_api_key(session: Session, key: str) -> ApiKey | None:
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def api_key_id(database: Database, authorization: str) -> int | None:
    """The id of the valid key an Authorization header carries ("Bearer <key>"), if any. Reads
    in its own short transaction that takes no write lock."""
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    with database.read_session() as session:
        row = find_api_key(session, key.strip())
        return None if row is None else row.id


def list_api_keys(session: Session) -> list[ApiKey]:
    """Every key, revoked ones included (they show when they were revoked)."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_api_key(session: Session, key_id: int, *, now: datetime) -> ApiKey:
    """Revoke a key by id; it stops working at once. Revoking twice keeps the first time."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"id: no API key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = now
    return row
