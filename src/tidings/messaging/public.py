"""Public pages reached from links in emails (no login): one-click unsubscribe (RFC 8058), the
preference page, double opt-in confirmation. Each link is signed (links.py).

A GET never changes anything (link scanners and mail security gateways open every link); each
change is a POST of a form that carries a token bound to the link (CSRF), from a page whose
Origin, when the browser names one, is TIDINGS_BASE_URL's. The one exception is RFC 8058's
one-click POST, which mailbox providers send from their servers."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from jinja2 import Environment
from markupsafe import Markup
from sqlalchemy.orm import Session

from tidings.api.deps import ClockDep, DatabaseDep, SessionDep, SettingsDep
from tidings.api.schemas import Id
from tidings.clock import Clock
from tidings.config import Settings
from tidings.contacts.models import Contact, MailingList
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
    return HTMLResponse(_PAGE.render(title=title, body=Markup(body)), status_code=status)


def _error(exc: TidingsError) -> HTMLResponse:
    return _page(
        "This link does not work",
        str(_env.from_string("<p>{{ d }}</p>").render(d=exc.detail)),
        exc.status,
    )


# --- CSRF and Origin -------------------------------------------------------------------------


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def _foreign_origin(request: Request, settings: Settings) -> bool:
    """A browser posting a form says where the page came from (Origin); a form posted from a
    page that is not ours (or from an opaque origin, "null") is refused. Clients that send no
    Origin at all are left to the form token."""
    origin = request.headers.get("origin")
    return origin is not None and _origin(origin) != _origin(settings.base_url)


def _refused_form() -> HTMLResponse:
    return _page(
        "This form was not sent from our page",
        "<p>Nothing was changed. Please open the link from your email again and use the "
        "buttons on that page.</p>",
        403,
    )


def _csrf(links: LinkSigner, token: str) -> Markup:
    return Markup('<input type="hidden" name="csrf" value="{}">').format(links.form_token(token))


FormToken = Annotated[str | None, Form()]


def _links(settings: SettingsDep, database: DatabaseDep) -> LinkSigner:
    return LinkSigner.from_settings(settings, database)


LinksDep = Annotated[LinkSigner, Depends(_links)]


# --- unsubscribe ----------------------------------------------------------------------------


def _unsubscribe_form(links: LinkSigner, token: str, email: str, contact_id: int) -> str:
    return _env.from_string(
        "<p>Unsubscribe <b>{{ email }}</b> from all our mail?</p>"
        '<form method="post">{{ csrf }}<button type="submit">Unsubscribe</button></form>'
        '<p>Or <a href="{{ prefs }}">choose which lists you want</a>.</p>'
    ).render(email=email, prefs=links.preferences_url(contact_id), csrf=_csrf(links, token))


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, session: SessionDep, links: LinksDep) -> HTMLResponse:
    """The footer link: a page with a button (GET never changes anything: link scanners)."""
    try:
        target = links.read_unsubscribe(token)
        prefs = subscriptions.preferences(session, target.contact_id)
    except TidingsError as exc:
        return _error(exc)
    return _page(
        "Unsubscribe", _unsubscribe_form(links, token, prefs.contact.email, target.contact_id)
    )


@router.post("/u/{token}", response_class=HTMLResponse)
def unsubscribe_now(
    token: str,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    links: LinksDep,
    one_click: Annotated[str | None, Form(alias="List-Unsubscribe")] = None,
    csrf: FormToken = None,
) -> HTMLResponse:
    """RFC 8058 one-click: a POST whose body (multipart/form-data or urlencoded) carries
    `List-Unsubscribe=One-Click`; mail providers send it from their servers, so it needs no
    form token or Origin. The page's button posts its form token. Anything else changes
    nothing and shows the page with the button."""
    try:
        target = links.read_unsubscribe(token)
        if one_click == "One-Click":
            how = "one-click"
        elif csrf is not None and _foreign_origin(request, settings):
            return _refused_form()
        elif links.check_form_token(token, csrf):
            how = "link"
        else:
            prefs = subscriptions.preferences(session, target.contact_id)
            body = _unsubscribe_form(links, token, prefs.contact.email, target.contact_id)
            return _page("Unsubscribe", body)
        contact = subscriptions.unsubscribe(session, target, now=clock.now(), how=how)
    except TidingsError as exc:
        return _error(exc)
    body = _env.from_string(
        "<p><b>{{ email }}</b> will not receive our newsletters any more.</p>"
        '<p>Changed your mind? <a href="{{ prefs }}">Your preferences</a>.</p>'
    ).render(email=contact.email, prefs=links.preferences_url(contact.id))
    return _page("You are unsubscribed", body)


# --- preferences ----------------------------------------------------------------------------


def _preferences_body(
    prefs: subscriptions.Preferences, csrf: Markup, message: str | None = None
) -> str:
    return _env.from_string(
        """{% if message %}<p><b>{{ message }}</b></p>{% endif %}
<p>Address: <b>{{ p.contact.email }}</b> — status: {{ p.contact.status }}</p>
<form method="post">{{ csrf }}
{% for l, status in p.lists %}<p><label><input type="checkbox" name="lists" value="{{ l.id }}"
{% if status == 'active' %}checked{% endif %}> {{ l.name }}
{% if status == 'pending' %}(waiting for your confirmation){% endif %}</label></p>{% endfor %}
<p><button name="action" value="save">Save</button>
<button name="action" value="unsubscribe_all">Unsubscribe from everything</button>
{% if p.contact.status == 'unsubscribed' %}
<button name="action" value="resubscribe">Subscribe again</button>{% endif %}</p>
</form>"""
    ).render(p=prefs, csrf=csrf, message=message)


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preference_page(token: str, session: SessionDep, links: LinksDep) -> HTMLResponse:
    try:
        contact_id = links.read_preferences(token)
        prefs = subscriptions.preferences(session, contact_id)
    except TidingsError as exc:
        return _error(exc)
    return _page("Your email preferences", _preferences_body(prefs, _csrf(links, token)))


@router.post("/preferences/{token}", response_class=HTMLResponse)
def save_preferences(
    token: str,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    links: LinksDep,
    action: Annotated[str, Form()] = "save",
    lists: Annotated[list[Id] | None, Form()] = None,
    csrf: FormToken = None,
) -> HTMLResponse:
    try:
        contact_id = links.read_preferences(token)
        if _foreign_origin(request, settings) or not links.check_form_token(token, csrf):
            return _refused_form()
        prefs = subscriptions.update_preferences(
            session, contact_id, keep_list_ids=set(lists or []), action=action, now=clock.now()
        )
    except TidingsError as exc:
        session.rollback()
        return _error(exc)
    return _page("Your email preferences", _preferences_body(prefs, _csrf(links, token), "Saved."))


# --- double opt-in --------------------------------------------------------------------------


def _confirmation(
    token: str, session: Session, clock: Clock, settings: Settings, links: LinkSigner
) -> tuple[Contact, MailingList | None]:
    _, contact, mailing_list = subscriptions.read_confirmation(
        session,
        token,
        links=links,
        now=clock.now(),
        max_age=timedelta(hours=settings.opt_in_expiry_hours),
    )
    return contact, mailing_list


def _notice(exc: TidingsError) -> HTMLResponse:
    if isinstance(exc, subscriptions.AlreadyConfirmed):
        return _page("Already confirmed", "<p>This link was used already: nothing to do.</p>")
    return _error(exc)


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirmation_page(
    token: str, session: SessionDep, clock: ClockDep, settings: SettingsDep, links: LinksDep
) -> HTMLResponse:
    """A page with a button: opening the link (or a scanner fetching it) changes nothing."""
    try:
        contact, mailing_list = _confirmation(token, session, clock, settings, links)
    except TidingsError as exc:
        return _notice(exc)
    body = _env.from_string(
        "<p>Subscribe <b>{{ email }}</b>{% if name %} to <b>{{ name }}</b>{% endif %}?</p>"
        '<form method="post">{{ csrf }}<button type="submit">Yes, subscribe me</button></form>'
        "<p>If you did not ask for this, close this page: nothing happens.</p>"
    ).render(
        email=contact.email,
        name=mailing_list.name if mailing_list is not None else None,
        csrf=_csrf(links, token),
    )
    return _page("Confirm your subscription", body)


@router.post("/confirm/{token}", response_class=HTMLResponse)
def confirm(
    token: str,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    links: LinksDep,
    csrf: FormToken = None,
) -> HTMLResponse:
    if _foreign_origin(request, settings) or not links.check_form_token(token, csrf):
        return _refused_form()
    try:
        contact = subscriptions.confirm_subscription(
            session,
            token,
            links=links,
            now=clock.now(),
            max_age=timedelta(hours=settings.opt_in_expiry_hours),
        )
    except TidingsError as exc:
        session.rollback()
        return _notice(exc)
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
