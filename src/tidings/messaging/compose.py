"""Turning a rendered template into the bytes of an RFC 5322 message.

Built by hand rather than with email.message: the layout is fixed (multipart/alternative, text
then HTML, quoted-printable UTF-8), it is several times faster, and DKIM then signs exactly the
bytes that go out.
"""

from __future__ import annotations

import functools
import html as htmllib
import quopri
import re
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr

_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_BLANKS = re.compile(r"\n\s*\n\s*(\n\s*)+")
_ANCHOR = re.compile(
    r"""<a\b[^>]*?\shref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))[^>]*>(.*?)</a\s*>""",
    re.IGNORECASE | re.DOTALL,
)
# RFC 5322 2.1.1: lines SHOULD stay within 78 characters and MUST within 998. Words longer
# than this are sent as encoded-words, which may be cut anywhere.
_FOLD_AT = 78
_LONGEST_WORD = 900


def _plain(html: str) -> str:
    return " ".join(htmllib.unescape(_TAGS.sub("", html)).split())


def _link_text(match: re.Match[str]) -> str:
    """`text (URL)` for a link, or the URL alone when the text says nothing more (a bare link,
    an image); mailto links whose text is the address stay the address."""
    href = next(group for group in match.groups()[:3] if group is not None)
    inner = match.group(4)
    url, text = htmllib.unescape(href).strip(), _plain(inner)
    address = url[7:].partition("?")[0] if url.lower().startswith("mailto:") else None
    bare = url.partition("://")[2] if "://" in url else url
    if text in ("", url, bare, url.rstrip("/"), bare.rstrip("/")) or text == address:
        return inner if text and text == address else href.replace("<", "%3C")
    return f"{inner} ({href.replace('<', '%3C')})"


def html_to_text(html: str) -> str:
    """A plain-text alternative when the template has none; links keep their URL."""
    text = _ANCHOR.sub(_link_text, html)
    text = re.sub(r"<(br|/p|/div|/h\d|/li|/tr)\b[^>]*>", "\n", text, flags=re.IGNORECASE)
    text = htmllib.unescape(_TAGS.sub("", text))
    return _BLANKS.sub("\n\n", text).strip() + "\n"


def _header_text(name: str, value: str) -> str:
    """A header's value, folded (RFC 5322 2.2.3) so that no line passes 78 characters where
    spaces allow it, and never 998; non-ASCII text as RFC 2047 encoded-words."""
    if value.isascii() and len(name) + 2 + len(value) <= _FOLD_AT:
        return value
    words = value.split(" ")
    if not value.isascii() or max(len(word) for word in words) > _LONGEST_WORD:
        return Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    lines: list[str] = []
    line, room = words[0], _FOLD_AT - len(name) - 2
    for word in words[1:]:
        if len(line) + 1 + len(word) > room and line.strip():
            # Fold before the space: unfolding (removing the CRLF) gives the value back.
            lines.append(line)
            line, room = word, _FOLD_AT - 1
        else:
            line = f"{line} {word}"
    lines.append(line)
    return "\r\n ".join(lines)


@functools.lru_cache(maxsize=256)  # the From is the same on every message
def _address(value: str) -> str:
    name, addr = parseaddr(value)
    if name and not name.isascii():
        return formataddr((name, addr), charset="utf-8")
    return formataddr((name, addr))


@functools.lru_cache(maxsize=16)  # a chunk of messages shares its timestamp
def _date(value: datetime) -> str:
    return format_datetime(value)


def _qp(text: str) -> bytes:
    encoded = quopri.encodestring(text.replace("\r\n", "\n").encode("utf-8"))
    return encoded.replace(b"\n", b"\r\n")


@dataclass(frozen=True, slots=True)
class Envelope:
    mail_from: str  # the return path (VERP when configured)
    rcpt_to: str


@dataclass(frozen=True, slots=True)
class Headers:
    from_: str
    to: str
    subject: str
    date: datetime
    message_id: str  # with its domain, without <>
    list_unsubscribe: list[str]  # URLs (https, mailto); empty for transactional mail
    one_click: bool
    reply_to: str | None = None  # personal mail: the reply address on the inbound domain


def build_message(headers: Headers, html: str, text: str | None) -> bytes:
    boundary = f"=_tidings_{headers.message_id.partition('@')[0]}"
    lines = [
        f"From: {_address(headers.from_)}",
        f"To: {headers.to}",
        f"Subject: {_header_text('Subject', headers.subject)}",
        f"Date: {_date(headers.date)}",
        f"Message-ID: <{headers.message_id}>",
        "MIME-Version: 1.0",
    ]
    if headers.reply_to:
        lines.append(f"Reply-To: {_address(headers.reply_to)}")
    if headers.list_unsubscribe:
        lines.append(
            "List-Unsubscribe: " + ",\r\n ".join(f"<{u}>" for u in headers.list_unsubscribe)
        )
        if headers.one_click:
            lines.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    head = "\r\n".join(lines).encode() + b"\r\n\r\n"
    parts = []
    for subtype, body in (
        ("plain", text if text is not None else html_to_text(html)),
        ("html", html),
    ):
        parts.append(
            f"--{boundary}\r\nContent-Type: text/{subtype}; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode()
            + _qp(body)
            + b"\r\n"
        )
    return head + b"".join(parts) + f"--{boundary}--\r\n".encode()
