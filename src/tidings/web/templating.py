"""Jinja2 rendering for the pages: the layout's context, htmx partials and field errors.

Conventions (docs/web.md): a full page extends `layout.html`; a part that htmx swaps lives in
`partials/` and the page includes it, so the first render and the update are one template.
`render` passes `login`, `csrf_token`, `nav` (which menu entry is current) and `errors`
(field name -> message, shown next to the field by the `field` macros).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from tidings.errors import TidingsError

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


def _number(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


templates.env.filters["when"] = _when
templates.env.filters["number"] = _number
templates.env.filters["percent"] = _percent
templates.env.filters["zip_self"] = lambda values: [(v, v) for v in values]


@dataclass(frozen=True, slots=True)
class NavEntry:
    key: str  # what `render(..., nav=key)` names to mark the entry current
    label: str
    path: str
    admin_only: bool = False


# The main menu, in order. A new page adds its entry here (docs/web.md).
NAV: list[NavEntry] = [
    NavEntry("dashboard", "Dashboard", "/admin"),
    NavEntry("contacts", "Contacts", "/admin/contacts"),
    NavEntry("segments", "Segments", "/admin/segments"),
    NavEntry("automations", "Automations", "/admin/automations"),
    NavEntry("deals", "Deals", "/admin/deals"),
    NavEntry("email", "Email", "/admin/email"),
    NavEntry("jobs", "Jobs", "/admin/jobs"),
    NavEntry("settings", "Settings", "/admin/settings", admin_only=True),
]


def nav_entries(login: Any) -> list[NavEntry]:
    return [e for e in NAV if not e.admin_only or (login is not None and login.is_admin)]


templates.env.globals["nav_entries"] = nav_entries


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    nav: str = "",
    errors: Mapping[str, str] | None = None,
) -> HTMLResponse:
    login = getattr(request.state, "login", None)
    values: dict[str, Any] = {
        "login": login,
        "csrf_token": login.csrf_token if login else "",
        "nav": nav,
        "errors": dict(errors or {}),
    }
    values.update(context or {})
    return templates.TemplateResponse(request, name, values, status_code=status)


def field_errors(exc: TidingsError, default_field: str = "form") -> dict[str, str]:
    """A domain error as {field: message}: from its `errors`, else "field: message" detail."""
    found = {str(e["field"]): str(e["message"]) for e in exc.errors if "field" in e}
    if found:
        return found
    field, sep, message = exc.detail.partition(": ")
    if sep and field.replace("_", "").replace(".", "").isalnum() and " " not in field:
        return {field: message}
    return {default_field: exc.detail}
