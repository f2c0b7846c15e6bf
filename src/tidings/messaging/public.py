"""Public pages reached from links in emails (no login): one-click unsubscribe (RFC 8058), the
preference page, double opt-in confirmation. Each link is signed (links.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from jinja2 import Environment

from tidings.api.deps import ClockDep, DatabaseDep, SessionDep, SettingsDep
from tidings.api.schemas import Id
from tidings.errors import NotFound, TidingsError
from tidings.messaging import devmail, subscriptions
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


def _error(exc: TidingsError) -> HTMLResponse:
    return _page(
        "This link does not work",
        str(_env.from_string("<p>{{ d }}</p>").render(d=exc.detail)),
        exc.status,
    )


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(
    token: str, session: SessionDep, settings: SettingsDep, database: DatabaseDep
) -> HTMLResponse:
    """The footer link: a page with a button (GET never changes anything: link scanners)."""
    links = LinkSigner.from_settings(settings, database)
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
    token: str,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    database: DatabaseDep,
) -> HTMLResponse:
    """RFC 8058 one-click (body `List-Unsubscribe=One-Click`) or the page's button."""
    links = LinkSigner.from_settings(settings, database)
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
def preference_page(
    token: str, session: SessionDep, settings: SettingsDep, database: DatabaseDep
) -> HTMLResponse:
    try:
        contact_id = LinkSigner.from_settings(settings, database).read_preferences(token)
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
    database: DatabaseDep,
    action: Annotated[str, Form()] = "save",
    lists: Annotated[list[Id] | None, Form()] = None,
) -> HTMLResponse:
    try:
        contact_id = LinkSigner.from_settings(settings, database).read_preferences(token)
        prefs = subscriptions.update_preferences(
            session, contact_id, keep_list_ids=set(lists or []), action=action, now=clock.now()
        )
    except TidingsError as exc:
        session.rollback()
        return _error(exc)
    return _page("Your email preferences", _preferences_body(prefs, saved=True))


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm(
    token: str, session: SessionDep, clock: ClockDep, settings: SettingsDep, database: DatabaseDep
) -> HTMLResponse:
    try:
        contact = subscriptions.confirm_subscription(
            session,
            token,
            links=LinkSigner.from_settings(settings, database),
            now=clock.now(),
            max_age=timedelta(hours=settings.opt_in_expiry_hours),
        )
    except TidingsError as exc:
        return _error(exc)
    body = _env.from_string("<p>Thank you: <b>{{ e }}</b> is subscribed.</p>").render(
        e=contact.email
    )
    return _page("Subscription confirmed", body)


def _mailbox(request: Request) -> devmail.DevMailbox:
    mailbox = getattr(request.app.state, "dev_mailbox", None)
    if mailbox is None:
        raise NotFound("the dev mailbox runs only with `tidings serve --dev-smtp`")
    return mailbox  # type: ignore[no-any-return]


@router.get("/dev/mailbox", response_class=HTMLResponse, include_in_schema=False)
def dev_mailbox(request: Request) -> HTMLResponse:
    """Messages caught by the --dev-smtp sink, newest first."""
    messages = _mailbox(request).newest_first()
    body = _env.from_string(
        """<p>{{ n }} message(s) caught by the development SMTP sink.</p>
<table cellpadding="4"><tr><th>#</th><th>to</th><th>subject</th><th>received</th></tr>
{% for m in messages %}<tr><td><a href="/dev/mailbox/{{ m.number }}">{{ m.number }}</a></td>
<td>{{ m.rcpt_tos | join(", ") }}</td><td>{{ m.header("Subject") }}</td>
<td>{{ m.received_at.strftime("%H:%M:%S") }}</td></tr>{% endfor %}</table>"""
    ).render(messages=messages, n=len(messages))
    return _page("Dev mailbox", body)


@router.get("/dev/mailbox/{number}", include_in_schema=False)
def dev_message(number: int, request: Request, raw: bool = False) -> Response:
    message = _mailbox(request).get(number)
    if message is None:
        raise NotFound(f"message {number} is not in the dev mailbox")
    if raw:
        return PlainTextResponse(message.data.decode("utf-8", "replace"))
    body = _env.from_string(
        """<p><a href="/dev/mailbox">&larr; mailbox</a> · <a href="?raw=1">raw</a></p>
<p><b>From:</b> {{ m.header("From") }}<br><b>To:</b> {{ m.rcpt_tos | join(", ") }}<br>
<b>Subject:</b> {{ m.header("Subject") }}<br>
<b>List-Unsubscribe:</b> {{ m.header("List-Unsubscribe") }}</p>
<iframe sandbox srcdoc="{{ m.html() or '' }}" style="width:100%;height:60vh;border:1px solid #ccc">
</iframe>"""
    ).render(m=message)
    return _page(f"Message {number}", body)
