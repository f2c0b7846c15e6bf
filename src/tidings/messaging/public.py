"""Public pages reached from links in emails (no login): one-click unsubscribe (RFC 8058), the
preference page, double opt-in confirmation. Each link is signed (links.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment

from tidings.api.deps import ClockDep, SessionDep, SettingsDep
from tidings.config import Settings
from tidings.errors import TidingsError
from tidings.messaging import subscriptions
from tidings.messaging.links import LinkSigner

router = APIRouter(tags=["email (public)"], include_in_schema=True)
_env = Environment(autoescape=True)

_PAGE = _env.from_string(
    """<!doctype html><html><head><meta charset="utf-8"><title>{{ title }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}
button{padding:.5rem 1rem}</style></head><body><h1>{{ title }}</h1>{{ body }}</body></html>"""
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    from markupsafe import Markup

    return HTMLResponse(_PAGE.render(title=title, body=Markup(body)), status_code=status)


def _links(settings: Settings) -> LinkSigner:
    return LinkSigner(settings.resolved_secret_key(), settings.base_url)


def _error(exc: TidingsError) -> HTMLResponse:
    return _page(
        "This link does not work",
        str(_env.from_string("<p>{{ d }}</p>").render(d=exc.detail)),
        exc.status,
    )


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    """The footer link: a page with a button (GET never changes anything: link scanners)."""
    links = _links(settings)
    try:
        target = links.read_unsubscribe(token)
        prefs = subscriptions.preferences(session, target.contact_id)
    except TidingsError as exc:
        return _error(exc)
    body = _env.from_string(
        "<p>Unsubscribe <b>{{ email }}</b> from all our mail?</p>"
        '<form method="post"><button type="submit">Unsubscribe</button></form>'
        '<p>Or <a href="{{ prefs }}">choose which lists you want</a>.</p>'
    ).render(email=prefs.contact.email, prefs=links.preferences_url(target.contact_id))
    return _page("Unsubscribe", body)


@router.post("/u/{token}", response_class=HTMLResponse)
def unsubscribe_now(
    token: str, request: Request, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> HTMLResponse:
    """RFC 8058 one-click (body `List-Unsubscribe=One-Click`) or the page's button."""
    links = _links(settings)
    try:
        target = links.read_unsubscribe(token)
        one_click = request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        )
        contact = subscriptions.unsubscribe(
            session, target, now=clock.now(), how="one-click" if one_click else "link"
        )
    except TidingsError as exc:
        return _error(exc)
    body = _env.from_string(
        "<p><b>{{ email }}</b> will not receive our newsletters any more.</p>"
        '<p>Changed your mind? <a href="{{ prefs }}">Your preferences</a>.</p>'
    ).render(email=contact.email, prefs=links.preferences_url(contact.id))
    return _page("You are unsubscribed", body)


def _preferences_body(prefs: subscriptions.Preferences, saved: bool) -> str:
    return _env.from_string(
        """{% if saved %}<p><b>Saved.</b></p>{% endif %}
<p>Address: <b>{{ p.contact.email }}</b> — status: {{ p.contact.status }}</p>
<form method="post">
{% for l, status in p.lists %}<p><label><input type="checkbox" name="lists" value="{{ l.id }}"
{% if status == 'active' %}checked{% endif %}> {{ l.name }}</label></p>{% endfor %}
<p><button name="action" value="save">Save</button>
<button name="action" value="unsubscribe_all">Unsubscribe from everything</button>
{% if p.contact.status == 'unsubscribed' %}
<button name="action" value="resubscribe">Subscribe again</button>{% endif %}</p>
</form>"""
    ).render(p=prefs, saved=saved)


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preference_page(token: str, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    try:
        contact_id = _links(settings).read_preferences(token)
        prefs = subscriptions.preferences(session, contact_id)
    except TidingsError as exc:
        return _error(exc)
    return _page("Your email preferences", _preferences_body(prefs, saved=False))


@router.post("/preferences/{token}", response_class=HTMLResponse)
def save_preferences(
    token: str,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    action: Annotated[str, Form()] = "save",
    lists: Annotated[list[int] | None, Form()] = None,
) -> HTMLResponse:
    try:
        contact_id = _links(settings).read_preferences(token)
        prefs = subscriptions.update_preferences(
            session, contact_id, keep_list_ids=set(lists or []), action=action, now=clock.now()
        )
    except TidingsError as exc:
        session.rollback()
        return _error(exc)
    return _page("Your email preferences", _preferences_body(prefs, saved=True))


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm(
    token: str, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> HTMLResponse:
    try:
        contact = subscriptions.confirm_subscription(
            session,
            token,
            links=_links(settings),
            now=clock.now(),
            max_age=timedelta(hours=settings.opt_in_expiry_hours),
        )
    except TidingsError as exc:
        return _error(exc)
    body = _env.from_string("<p>Thank you: <b>{{ e }}</b> is subscribed.</p>").render(
        e=contact.email
    )
    return _page("Subscription confirmed", body)
