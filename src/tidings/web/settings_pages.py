"""Settings (administrators only): users, API keys, and the sending configuration shown with
its secrets masked. A new password or API key is shown once, in the answer to the form."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from tidings.api.deps import ClockDep, SettingsDep
from tidings.api.schemas import Id
from tidings.auth.service import create_api_key, list_api_keys, revoke_api_key
from tidings.config import Settings
from tidings.deals import users
from tidings.deals.users import Role
from tidings.errors import TidingsError, field_error
from tidings.web import passwords
from tidings.web.logins import end_sessions_of
from tidings.web.security import AdminDep, PageSessionDep, check_csrf
from tidings.web.templating import field_errors, render

router = APIRouter(dependencies=[Depends(check_csrf)])
MASK = "••••••"
# Settings whose values are secrets: shown as set or not, never their value.
SECRET_SETTINGS = {"secret_key", "dkim_private_key"}
SENDING_SETTINGS = (
    "base_url",
    "mail_from",
    "smtp_url",
    "smtp_connections",
    "smtp_rate_per_second",
    "smtp_domain_rate_per_second",
    "smtp_timeout_seconds",
    "smtp_max_attempts",
    "bounce_domain",
    "unsubscribe_mailto",
    "dkim_selector",
    "dkim_domain",
    "dkim_private_key",
    "dkim_private_key_file",
    "secret_key",
    "soft_bounce_limit",
    "soft_bounce_days",
)


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def sending_configuration(settings: Settings) -> list[tuple[str, str]]:
    shown = []
    for name in SENDING_SETTINGS:
        value = getattr(settings, name)
        if value is None:
            text = "not set"
        elif name in SECRET_SETTINGS:
            text = f"set ({MASK})"
        elif name == "smtp_url":
            text = _mask_url(str(value))
        else:
            text = str(value)
        shown.append((f"TIDINGS_{name.upper()}", text))
    return shown


def _page(
    request: Request,
    session: PageSessionDep,
    settings: Settings,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    **extra: Any,
) -> HTMLResponse:
    context = {
        "users": users.list_users(session),
        "api_keys": list_api_keys(session),
        "sending": sending_configuration(settings),
        "roles": [(r.value, r.value) for r in Role],
        **extra,
    }
    return render(request, "settings.html", context, nav="settings", errors=errors, status=status)


@router.get("/admin/settings", response_class=HTMLResponse)
def settings_page(
    request: Request, login: AdminDep, session: PageSessionDep, settings: SettingsDep
) -> HTMLResponse:
    return _page(request, session, settings)


@router.post("/admin/settings/users", response_class=HTMLResponse)
def create_user(
    request: Request,
    login: AdminDep,
    session: PageSessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=16)] = "member",
) -> HTMLResponse:
    try:
        if role not in {r.value for r in Role}:
            raise field_error("role", "must be admin or member")
        user = users.create_user(session, email, name, role=Role(role), now=clock.now())
        password = passwords.one_time_password()
        passwords.set_password(session, user, password, now=clock.now())
    except TidingsError as exc:
        errors = field_errors(exc, "email")
        form = {"email": email, "name": name, "role": role}
        return _page(request, session, settings, status=422, errors=errors, user_form=form)
    shown = {"what": f"The one-time password of {user.email}", "value": password}
    return _page(request, session, settings, shown=shown)


@router.post("/admin/settings/users/{user_id}/password", response_class=HTMLResponse)
def reset_password(
    request: Request,
    user_id: Id,
    login: AdminDep,
    session: PageSessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> HTMLResponse:
    user = users.get_user(session, user_id)
    password = passwords.one_time_password()
    passwords.set_password(session, user, password, now=clock.now())
    end_sessions_of(session, user.id)
    shown = {"what": f"The new one-time password of {user.email}", "value": password}
    return _page(request, session, settings, shown=shown)


@router.post("/admin/settings/users/{user_id}/active", response_class=HTMLResponse)
def set_active(
    request: Request,
    user_id: Id,
    login: AdminDep,
    session: PageSessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    active: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    user = users.get_user(session, user_id)
    if user.id == login.user_id and not active:
        errors = {"users": "You cannot deactivate yourself."}
        return _page(request, session, settings, status=422, errors=errors)
    users.update_user(session, user, now=clock.now(), active=active)
    if not active:
        end_sessions_of(session, user.id)
    return _page(request, session, settings)


@router.post("/admin/settings/api-keys", response_class=HTMLResponse)
def create_key(
    request: Request,
    login: AdminDep,
    session: PageSessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    key_name: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    name = key_name.strip()
    if not name:
        errors = {"key_name": "Give the key a name (who or what uses it)."}
        return _page(request, session, settings, status=422, errors=errors)
    _, key = create_api_key(session, name, now=clock.now())
    shown = {"what": f"The API key {name!r}", "value": key}
    return _page(request, session, settings, shown=shown)


@router.post("/admin/settings/api-keys/{key_id}/revoke", response_class=HTMLResponse)
def revoke_key(
    request: Request,
    key_id: Id,
    login: AdminDep,
    session: PageSessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> HTMLResponse:
    revoke_api_key(session, key_id, now=clock.now())
    return _page(request, session, settings)
