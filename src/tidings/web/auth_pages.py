"""Login, logout and the signed-in user's own password."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from tidings.api.deps import ClockDep, DatabaseDep, SettingsDep
from tidings.auth.signing import signing_keys
from tidings.contacts.emails import InvalidEmail, normalize_email
from tidings.deals.models import User
from tidings.errors import TidingsError
from tidings.web import logins, passwords
from tidings.web.security import (
    LOGIN_CSRF_COOKIE,
    Forbidden,
    LoginDep,
    PageSessionDep,
    check_csrf,
    check_origin,
    is_secure,
    session_lifetime,
    session_token,
    tokens_match,
)
from tidings.web.templating import field_errors, render

public = APIRouter()
signed_in = APIRouter(dependencies=[Depends(check_csrf)])


def _safe_next(target: str | None) -> str:
    """Only a path of ours: never //host or a scheme (an open redirect)."""
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return "/admin"


def _login_form(
    request: Request, *, email: str = "", next_url: str = "/admin", error: str = "", status: int
) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        {"email": email, "next": next_url, "login_csrf": token},
        status=status,
        errors={"password": error} if error else None,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax", secure=is_secure(request)
    )
    return response


@public.get("/admin/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _login_form(request, next_url=_safe_next(next), status=200)


@public.post("/admin/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: PageSessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    database: DatabaseDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=passwords.MAX_LENGTH)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/admin",
) -> Response:
    check_origin(request, settings)
    # Login CSRF: the form's token must be the one in this browser's cookie.
    if not tokens_match(csrf_token, request.cookies.get(LOGIN_CSRF_COOKIE, "")):
        raise Forbidden("the login form was stale (CSRF token); reload the page")
    now = clock.now()
    client = request.client.host if request.client else "unknown"
    try:
        address = normalize_email(email)
    except InvalidEmail:
        address = email.strip().lower()
    wait = logins.refused_for(session, address, client, now=now)
    if wait is not None:
        minutes = max(1, round(wait.total_seconds() / 60))
        message = f"Too many failed attempts. Try again in {minutes} minute(s)."
        return _login_form(request, email=email, next_url=next, error=message, status=429)
    user = session.scalar(select(User).where(User.email == address))
    if not passwords.verify(user, password) or user is None:
        logins.record_attempt(session, address, client, succeeded=False, now=now)
        message = "Wrong email or password."
        return _login_form(request, email=email, next_url=next, error=message, status=401)
    logins.record_attempt(session, address, client, succeeded=True, now=now)
    passwords.upgrade_hash_if_needed(user, password)
    token = logins.start_session(session, user, now=now, lifetime=session_lifetime(settings))
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        logins.COOKIE,
        logins.sign(token, signing_keys(settings, database)),
        httponly=True,
        samesite="lax",
        secure=is_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@signed_in.post("/admin/logout")
def logout(
    request: Request,
    login: LoginDep,
    session: PageSessionDep,
    settings: SettingsDep,
    database: DatabaseDep,
) -> Response:
    token = session_token(request, settings, database)
    if token is not None:
        logins.end_session(session, token)
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(logins.COOKIE, path="/")
    return response


@signed_in.get("/admin/account", response_class=HTMLResponse)
def account_page(request: Request, login: LoginDep) -> HTMLResponse:
    return render(request, "account.html", nav="account")


@signed_in.post("/admin/account/password", response_class=HTMLResponse)
def change_password(
    request: Request,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    database: DatabaseDep,
    current: Annotated[str, Form(max_length=passwords.MAX_LENGTH)] = "",
    new: Annotated[str, Form(max_length=passwords.MAX_LENGTH)] = "",
) -> Response:
    user = session.get(User, login.user_id)
    if not passwords.verify(user, current) or user is None:
        errors = {"current": "This is not your current password."}
        return render(request, "account.html", nav="account", errors=errors, status=422)
    try:
        passwords.set_password(session, user, new, now=clock.now())
    except TidingsError as exc:
        errors = {"new": field_errors(exc)["password"]}
        return render(request, "account.html", nav="account", errors=errors, status=422)
    # Every other browser of this user is logged out; this one stays in.
    token = session_token(request, settings, database)
    logins.end_sessions_of(session, user.id, keep=token)
    return render(request, "account.html", {"changed": True}, nav="account")
