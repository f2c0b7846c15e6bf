"""Sessions of the web admin and the rate limit on password attempts.

The cookie holds a random token signed with the instance's signing keys (tidings.auth.signing);
the database keeps only its SHA-256 with the user, the CSRF token and the idle expiry.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, Signer
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from tidings.deals.models import User
from tidings.web.models import LoginAttempt, UserSession

COOKIE = "tidings_session"
# Within this window, this many failed attempts for one address (or from one client address)
# refuse further attempts until the oldest ages out.
ATTEMPT_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_CLIENT = 30
# How often a used session's expiry is pushed forward (one write a minute, not one a request).
TOUCH_EVERY = timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _signer(keys: tuple[str, ...]) -> Signer:
    return Signer(list(keys), salt="tidings.web.session")


def sign(token: str, keys: tuple[str, ...]) -> str:
    return _signer(keys).sign(token).decode()


def unsign(cookie: str, keys: tuple[str, ...]) -> str | None:
    try:
        return _signer(keys).unsign(cookie).decode()
    except BadSignature:
        return None


@dataclass(frozen=True, slots=True)
class Login:
    """A signed-in user as a request sees it."""

    user_id: int
    email: str
    name: str
    role: str
    csrf_token: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def start_session(session: Session, user: User, *, now: datetime, lifetime: timedelta) -> str:
    """A new session for the user; returns the token for the cookie (not stored)."""
    token = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            token_hash=_hash(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    # Sessions that expired long ago go with each login, so the table never grows unbounded.
    session.execute(delete(UserSession).where(UserSession.expires_at < now - timedelta(days=1)))
    session.flush()
    return token


def find_session(session: Session, token: str, *, now: datetime) -> tuple[Login, datetime] | None:
    """The signed-in user of this token and the session's expiry, or None (unknown, expired,
    or the user deactivated). Reads only: `touch_session` pushes the expiry forward."""
    row = session.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.token_hash == _hash(token))
    ).first()
    if row is None:
        return None
    user_session, user = row
    if user_session.expires_at <= now or not user.active:
        return None
    login = Login(user.id, user.email, user.name, user.role, user_session.csrf_token)
    return login, user_session.expires_at


def needs_touch(expires_at: datetime, *, now: datetime, lifetime: timedelta) -> bool:
    return expires_at - lifetime + TOUCH_EVERY <= now


def touch_session(session: Session, token: str, *, now: datetime, lifetime: timedelta) -> None:
    session.execute(
        update(UserSession)
        .where(UserSession.token_hash == _hash(token))
        .values(expires_at=now + lifetime)
    )


def end_session(session: Session, token: str) -> None:
    session.execute(delete(UserSession).where(UserSession.token_hash == _hash(token)))


def end_sessions_of(session: Session, user_id: int, *, keep: str | None = None) -> None:
    """Log a user out everywhere (password changed, user deactivated), except the session
    whose token is `keep` (the browser that changed the password)."""
    statement = delete(UserSession).where(UserSession.user_id == user_id)
    if keep is not None:
        statement = statement.where(UserSession.token_hash != _hash(keep))
    session.execute(statement)


def refused_for(session: Session, email: str, client: str, *, now: datetime) -> timedelta | None:
    """How long until another attempt is allowed, or None when one is allowed now."""
    since = now - ATTEMPT_WINDOW
    failed = select(func.count(), func.min(LoginAttempt.attempted_at)).where(
        LoginAttempt.succeeded.is_(False), LoginAttempt.attempted_at > since
    )
    for condition, limit in (
        (LoginAttempt.email == email, MAX_FAILURES_PER_EMAIL),
        (LoginAttempt.client == client, MAX_FAILURES_PER_CLIENT),
    ):
        count, oldest = session.execute(failed.where(condition)).one()
        if count >= limit and oldest is not None:
            return max(oldest + ATTEMPT_WINDOW - now, timedelta(seconds=1))
    return None


def record_attempt(
    session: Session, email: str, client: str, *, succeeded: bool, now: datetime
) -> None:
    session.add(
        LoginAttempt(email=email, client=client[:64], succeeded=succeeded, attempted_at=now)
    )
    # Attempts older than the window decide nothing any more.
    session.execute(delete(LoginAttempt).where(LoginAttempt.attempted_at < now - ATTEMPT_WINDOW))
