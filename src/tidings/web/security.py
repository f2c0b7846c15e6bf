"""Who is asking, and whether a state-changing request really comes from our own pages.

Every page depends on `LoginDep` (or `AdminDep`); every router of pages carries
`Depends(check_csrf)`, which refuses a POST/PUT/PATCH/DELETE whose Origin (or Referer) is
another site's or whose CSRF token (form field `csrf_token` or header `X-CSRF-Token`, which
the layout makes htmx send) is not the session's.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tidings.api.deps import ClockDep, DatabaseDep, SettingsDep, get_session
from tidings.auth.signing import signing_keys
from tidings.config import Settings
from tidings.web.logins import (
    COOKIE,
    Login,
    find_session,
    needs_touch,
    touch_session,
    unsign,
)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
LOGIN_CSRF_COOKIE = "tidings_login_csrf"


class LoginRequired(Exception):
    """No valid session: pages redirect to the login form, htmx requests get HX-Redirect."""


class Forbidden(Exception):
    """Signed in, but the role does not allow it (or the request failed the CSRF checks)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def session_lifetime(settings: Settings) -> timedelta:
    return timedelta(hours=settings.web_session_hours)


def session_token(request: Request, settings: Settings, database: DatabaseDep) -> str | None:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    return unsign(cookie, signing_keys(settings, database))


def current_login(
    request: Request, database: DatabaseDep, settings: SettingsDep, clock: ClockDep
) -> Login:
    """The signed-in user, read in a transaction of its own that never takes SQLite's write
    lock (so a page that only reads never waits for writers); a used session's expiry is
    pushed forward in a short write at most once a minute."""
    token = session_token(request, settings, database)
    found = None
    now, lifetime = clock.now(), session_lifetime(settings)
    if token is not None:
        with database.read_session() as session:
            found = find_session(session, token, now=now)
    if found is None or token is None:
        raise LoginRequired
    login, expires_at = found
    if needs_touch(expires_at, now=now, lifetime=lifetime):
        with database.session() as session:
            touch_session(session, token, now=now, lifetime=lifetime)
    request.state.login = login
    return login


LoginDep = Annotated[Login, Depends(current_login)]
# The unit of work of a page: as the API's (a read transaction for GET, a write for the rest),
# but committed BEFORE the answer leaves (scope "function"), so the page a redirect sends the
# browser to next already sees the change (the default scope commits after the response).
PageSessionDep = Annotated[Session, Depends(get_session, scope="function")]


def require_admin(login: LoginDep) -> Login:
    if not login.is_admin:
        raise Forbidden("this page is for administrators")
    return login


AdminDep = Annotated[Login, Depends(require_admin)]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_origin(request: Request, settings: Settings) -> None:
    """The browser says where the request comes from (Origin; else Referer): it must be us."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if claimed is None:
        return  # old clients send neither: the CSRF token alone decides
    allowed = {_origin(str(request.base_url)), _origin(settings.base_url)}
    if claimed == "null" or _origin(claimed) not in allowed:
        raise Forbidden("the request came from another site (Origin check)")


async def submitted_token(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


def tokens_match(submitted: str, expected: str) -> bool:
    return bool(submitted) and secrets.compare_digest(submitted.encode(), expected.encode())


async def check_csrf(request: Request, login: LoginDep, settings: SettingsDep) -> None:
    if request.method in SAFE_METHODS:
        return
    check_origin(request, settings)
    if not tokens_match(await submitted_token(request), login.csrf_token):
        raise Forbidden("the form was stale or not ours (CSRF token); reload the page")


def is_secure(request: Request) -> bool:
    """Cookies get Secure when the browser reached us over https (directly or via a proxy
    whose X-Forwarded-Proto uvicorn believes)."""
    return request.url.scheme == "https"
