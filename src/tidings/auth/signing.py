"""The keys that sign links in mail (unsubscribe, preferences, opt-in, tracking): where every
process finds them, and their rotation.

They live in the database (`signing_keys`), so an API process and a worker started anywhere
sign and verify alike. `tidings db upgrade` creates the first one (carrying over the secret
file of a previous version). TIDINGS_SECRET_KEY, when set, overrides them: it is then the only
key. A rotation adds a key that signs from then on; the older ones still verify until they are
dropped. Each process re-reads the keys every REFRESH_SECONDS.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from tidings.auth.models import SigningKey
from tidings.config import Settings
from tidings.db.bulk import dialect_insert
from tidings.db.engine import READ_ONLY, Database

REFRESH_SECONDS = 30.0
log = logging.getLogger("tidings.auth")

_lock = threading.Lock()
# engine -> (monotonic time read, keys oldest first)
_cache: weakref.WeakKeyDictionary[Engine, tuple[float, tuple[str, ...]]] = (
    weakref.WeakKeyDictionary()
)


def new_key() -> str:
    return secrets.token_urlsafe(48)


def signing_keys(settings: Settings, database: Database) -> tuple[str, ...]:
    """The keys links are signed and verified with, oldest first: the last signs, every one
    verifies (itsdangerous takes them in this order). The one source of keys: LinkSigner,
    TrackingTokens and the sender all get theirs here."""
    if settings.secret_key:
        return (settings.secret_key,)
    engine = database.engine
    now = time.monotonic()
    with _lock:
        cached = _cache.get(engine)
    if cached is not None and now - cached[0] < REFRESH_SECONDS:
        return cached[1]
    try:
        keys = _read(database)
        if not keys:  # an instance whose first key was dropped by hand: make a new one
            _insert_first_key(database)
            keys = _read(database)
    except Exception:
        if cached is None:
            raise
        # The database did not answer: keep verifying with the keys we have (the open pixel
        # must answer), and try again after the next interval.
        log.warning("reading the signing keys failed; using the ones read before", exc_info=True)
        keys = cached[1]
    with _lock:
        _cache[engine] = (now, keys)
    return keys


def forget_cached_keys(database: Database) -> None:
    """Read the keys again at the next use (after this process rotated them)."""
    with _lock:
        _cache.pop(database.engine, None)


def _read(database: Database) -> tuple[str, ...]:
    with database.engine.connect() as connection:
        reading = connection.execution_options(**{READ_ONLY: True})  # no write lock
        rows = reading.execute(select(SigningKey.key).order_by(SigningKey.id))
        return tuple(rows.scalars())


def _insert_first_key(database: Database) -> None:
    """Processes doing this at the same moment all try id 1; one key wins."""
    with database.session() as session:
        statement = dialect_insert(session, SigningKey.__table__).values(
            id=1, key=new_key(), created_at=func.now()
        )
        session.execute(statement.on_conflict_do_nothing())


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: int
    fingerprint: str  # never the key itself
    created_at: datetime
    signing: bool


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def list_keys(session: Session) -> list[KeyInfo]:
    rows = list(session.scalars(select(SigningKey).order_by(SigningKey.id)))
    return [
        KeyInfo(row.id, fingerprint(row.key), row.created_at, signing=row is rows[-1])
        for row in rows
    ]


def rotate_key(session: Session, *, now: datetime, drop_old: bool = False) -> KeyInfo:
    """Add a key that signs every link from now on; the older keys still verify, or, with
    `drop_old`, are deleted (links signed with them stop working at once)."""
    last = session.scalar(select(func.max(SigningKey.id))) or 0
    row = SigningKey(id=last + 1, key=new_key(), created_at=now)
    session.add(row)
    session.flush()
    if drop_old:
        drop_old_keys(session)
    return KeyInfo(row.id, fingerprint(row.key), row.created_at, signing=True)


def drop_old_keys(session: Session) -> int:
    """Delete every key but the newest (the one that signs); returns how many."""
    newest = session.scalar(select(func.max(SigningKey.id)))
    if newest is None:
        return 0
    result = session.execute(delete(SigningKey).where(SigningKey.id < newest))
    return int(result.rowcount)  # type: ignore[attr-defined]
