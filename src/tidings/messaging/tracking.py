"""Click tracking and the open pixel, with the events package's signed tokens.

The token maker is passed in (tidings.events.tokens.TrackingTokens satisfies it), so this module
only rewrites HTML.
"""

from __future__ import annotations

import functools
import html as htmllib
import re
from collections.abc import Callable, Container
from typing import Protocol


class TokenMaker(Protocol):
    def open_token(self, contact_id: int, message_id: str) -> str: ...

    def click_token(self, contact_id: int, url: str, message_id: str) -> str: ...


_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)


@functools.lru_cache(maxsize=1024)  # the same few links in every message of a broadcast
def _http_target(href: str) -> str | None:
    """The URL an href attribute points to, if it is an http(s) one."""
    url = htmllib.unescape(href.strip())
    return url if url.lower().startswith(("http://", "https://")) else None


def rewrite_links(html: str, tracked: Callable[[str], str], keep: Container[str] = ()) -> str:
    """Replace every http(s) link target by `tracked(original)`; links in `keep`, mailto: and
    anchors stay as they are."""

    def replace(match: re.Match[str]) -> str:
        url = _http_target(match.group(3))
        if url is None or url in keep:
            return match.group(0)
        new = htmllib.escape(tracked(url), quote=True)
        return f"{match.group(1)}{match.group(2)}{new}{match.group(2)}"

    return _HREF.sub(replace, html)


def add_pixel(html: str, pixel_url: str) -> str:
    tag = (
        f'<img src="{htmllib.escape(pixel_url)}" width="1" height="1" alt="" style="display:none">'
    )
    lower = html.lower()
    at = lower.rfind("</body>")
    if at < 0:
        return html + tag
    return html[:at] + tag + html[at:]


class Tracker:
    """Applies a template's tracking switches to one rendered message."""

    def __init__(self, tokens: TokenMaker, base_url: str) -> None:
        self.tokens = tokens
        self.base_url = base_url.rstrip("/")

    def apply(
        self,
        html: str,
        *,
        contact_id: int,
        message_id: str,
        opens: bool,
        clicks: bool,
        keep: Container[str] = (),
    ) -> str:
        if clicks:
            html = rewrite_links(
                html,
                lambda url: (
                    f"{self.base_url}/t/c/" + self.tokens.click_token(contact_id, url, message_id)
                ),
                keep,
            )
        if opens:
            token = self.tokens.open_token(contact_id, message_id)
            html = add_pixel(html, f"{self.base_url}/t/o/{token}.gif")
        return html
