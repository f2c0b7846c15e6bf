"""Public tracking endpoints (no API key; everything is proven by a signed token).

GET  /t/o/{token}.gif   open pixel: always a 1x1 GIF, fast (the event is queued)
GET  /t/c/{token}       click: 302 to the URL sealed in the token, never anywhere else
GET  /t/site.js         site-tracking snippet
POST /t/v               page visit of an identified visitor (from site.js)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from tidings.auth.signing import signing_keys
from tidings.config import Settings
from tidings.events.recorder import TrackingRecorder
from tidings.events.tokens import InvalidToken, TrackingTokens, safe_url


class _QuietPixels(logging.Filter):
    """Keep open-pixel hits out of the access log: they would flood it (and writing each line
    costs more than answering the pixel)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (isinstance(args, tuple) and len(args) > 2 and str(args[2]).startswith("/t/o/"))


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    recorder = _recorder(app)
    recorder.start()
    quiet = _QuietPixels()
    access_log = logging.getLogger("uvicorn.access")
    access_log.addFilter(quiet)
    try:
        yield
    finally:
        access_log.removeFilter(quiet)
        recorder.stop()


router = APIRouter(lifespan=_lifespan)

PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache"}
COOKIE = "tidings_c"
QUERY_PARAM = "tdc"
COOKIE_MAX_AGE = 365 * 24 * 3600

# An open or click this soon after the message was made is a machine: Apple Mail Privacy
# Protection fetches images on delivery, security gateways follow every link on arrival.
MACHINE_AGENTS = (
    "bot",
    "crawler",
    "spider",
    "python",
    "curl",
    "wget",
    "go-http-client",
    "java/",
    "libwww",
    "scanner",
    "barracuda",
    "proofpoint",
    "mimecast",
    "symantec",
    "forcepoint",
    "trendmicro",
    "microsoft office existence discovery",
)


def _recorder(app: FastAPI) -> TrackingRecorder:
    recorder: TrackingRecorder | None = getattr(app.state, "tracking", None)
    if recorder is None:
        settings: Settings = app.state.settings
        recorder = TrackingRecorder(
            app.state.database,
            app.state.clock,
            retention_days=settings.event_retention_days,
            flush_seconds=settings.tracking_flush_seconds,
        )
        app.state.tracking = recorder
    return recorder


def _tokens(app: FastAPI) -> TrackingTokens:
    """Made again only when the keys changed (a rotation reached this process)."""
    tokens: TrackingTokens | None = getattr(app.state, "tracking_tokens", None)
    settings: Settings = app.state.settings
    if tokens is None or tokens.keys != signing_keys(settings, app.state.database):
        tokens = TrackingTokens.from_settings(settings, app.state.database, app.state.clock)
        app.state.tracking_tokens = tokens
    return tokens


def is_machine(request: Request, issued_at: datetime, now: datetime) -> bool:
    """Heuristics for opens and clicks no person made (docs/events-and-segments.md)."""
    settings: Settings = request.app.state.settings
    too_soon = timedelta(seconds=settings.tracking_machine_seconds)
    if now - issued_at < too_soon or request.method == "HEAD":
        return True
    agent = request.headers.get("user-agent", "").strip()
    if agent in ("", "Mozilla/5.0"):  # Apple's image proxy sends exactly "Mozilla/5.0"
        return True
    lowered = agent.lower()
    if any(marker in lowered for marker in MACHINE_AGENTS):
        return True
    host = request.client.host if request.client else ""
    # Apple's proxies are 17.0.0.0/8 (as IPv4, or IPv4-mapped IPv6).
    return host.startswith(("17.", "::ffff:17."))


def _record(request: Request, event: dict[str, Any]) -> None:
    _recorder(request.app).add(event)


async def open_pixel(request: Request) -> Response:
    """Always the pixel, whatever the token: a broken image helps no one.

    A plain Starlette route (no FastAPI parameter solving): this is the hottest endpoint."""
    try:
        opened = _tokens(request.app).read_open(request.path_params["token"])
    except InvalidToken:
        return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)
    now = request.app.state.clock.now()
    event: dict[str, Any] = {
        "type": "email_opened",
        "contact_id": opened.contact_id,
        "occurred_at": now.isoformat(),
        "machine": is_machine(request, opened.issued_at, now),
    }
    if opened.message_id is not None:
        event["message_id"] = opened.message_id
    _record(request, event)
    return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)


router.add_route("/t/o/{token}.gif", open_pixel, methods=["GET"], include_in_schema=False)


def _with_param(url: str, key: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != key]
    query.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(query)))


@router.api_route("/t/c/{token}", methods=["GET", "HEAD"], include_in_schema=False)
def click(token: str, request: Request) -> Response:
    """Redirect to the sealed URL (with the visitor's contact token for site.js); a tampered
    token is 404 and records nothing. The click is stored before the redirect is answered (a
    plain `def`: the write runs in the thread pool, not on the event loop)."""
    tokens = _tokens(request.app)
    clicked = tokens.read_click(token)  # InvalidToken -> 404 problem
    now = request.app.state.clock.now()
    event: dict[str, Any] = {
        "type": "link_clicked",
        "contact_id": clicked.contact_id,
        "url": clicked.url,
        "occurred_at": now.isoformat(),
        "machine": is_machine(request, clicked.issued_at, now),
    }
    if clicked.message_id is not None:
        event["message_id"] = clicked.message_id
    _recorder(request.app).record_now(event)
    contact = tokens.contact_token(clicked.contact_id)
    response = RedirectResponse(_with_param(clicked.url, QUERY_PARAM, contact), status_code=302)
    response.headers.update(NO_CACHE)
    response.set_cookie(
        COOKIE, contact, max_age=COOKIE_MAX_AGE, httponly=True, samesite="lax", path="/"
    )
    return response


@router.get("/t/site.js", include_in_schema=False)
async def site_js() -> Response:
    script = resources.files("tidings.events").joinpath("site.js").read_bytes()
    return Response(
        script,
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.post("/t/v", include_in_schema=False)
async def visit(request: Request) -> Response:
    """A page view from site.js: {"c": contact token, "u": page URL, "r": referrer}."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return Response(status_code=400)
    if not isinstance(body, dict):
        return Response(status_code=400)
    token = body.get("c") or request.cookies.get(COOKIE)
    url = body.get("u")
    if not isinstance(token, str) or not isinstance(url, str) or not safe_url(url):
        return Response(status_code=400)
    contact_id = _tokens(request.app).read_contact(token)  # InvalidToken -> 404
    event: dict[str, Any] = {
        "type": "site_visit",
        "contact_id": contact_id,
        "url": url,
        "occurred_at": request.app.state.clock.now().isoformat(),
    }
    referrer = body.get("r")
    if isinstance(referrer, str) and referrer and safe_url(referrer):
        event["properties"] = {"referrer": referrer}
    _record(request, event)
    return Response(status_code=204, headers={"Access-Control-Allow-Origin": "*"})
