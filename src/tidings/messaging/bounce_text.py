"""The text of a bounce the rules may read: the notice part, decoded, without the copy of the
original message it quotes; addresses cleaned of DSN types, comments and gateway forms; and
each recipient's own paragraph of the notice."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message

# Where a notice stops and the copy of the original message begins: everything from the first
# of these lines on is the original (newsletters say "user unknown" too).
_ORIGINAL_STARTS = re.compile(
    r"^[ \t>]*(?:"
    r"-+ *(?:this is a copy of|below this line is a copy of|below the next line is a copy of"
    r"|original message|forwarded message|unsent message|returned message|message text follows"
    r"|start of returned message|returned mail follows|the original message)"
    r"|-+ *(?:original|ursprüngliche|message d'origine|исходное) ?(?:message|nachricht|сообщение)?"
    r" *-+"
    r"|begin forwarded message:|original message follows|possibly truncated original message"
    r"|original message headers:?"
    r"|the original message (?:headers )?(?:is|was|are) (?:attached|below)"
    r"|(?:return-path|received):"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
# Quoted lines of a reply ("> ..."), not Sendmail's ">>> RCPT TO" transcript lines.
_QUOTED = re.compile(r"^[ \t]*>(?!>> ).*$", re.MULTILINE)
_HTML_HIDDEN = re.compile(r"<(head|style|script|title)\b", re.IGNORECASE)
_HTML_BREAK = re.compile(r"<(?:br|/p|/div|/tr|/li|/h\d|/table|p|div|tr|li)\b[^>]*>", re.I)
_HTML_TAG = re.compile(r"<[^>]*>")
_COMMENT = re.compile(r"\([^()]*\)")
_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"'\x00-\x1f\x7f]+@(?:[\w-]+\.)+[\w-]{2,}")
# What the database and JSON cannot hold (PostgreSQL refuses NUL; lone surrogates do not
# encode), nor a log line should show.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# Bounded like RFC 5321's limits, so a hostile notice cannot make the search quadratic.
_ADDRESS_IN_TEXT = re.compile(
    r"(?<![\w.+%=-])[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,10}"
    r"[A-Za-z]{2,63}(?![\w-])"
)
# "Sender Address: news@example.com" (Microsoft 365), "From: <...>": the sender, not a recipient.
_SENDER_LABEL = re.compile(
    r"(?:^|\n)[ \t]*(?:from|sender(?: address)?|reply-to|return-path|mail from|envelope-from)"
    r"[ \t]*:[ \t]*(?:[^\n<]*<)?[ \t]*$",
    re.IGNORECASE,
)
_UTF8_ESCAPE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")
# Gateway-internal forms that look like addresses but are not the one we sent to:
# Exchange's encapsulated X.400/X.500 (IMCEAEX-..., IMCEAX400-...) and X.400 O/R names.
_GATEWAY_FORM = re.compile(r"^(?:imcea|/|x400:|c=\w+;)|/(?:c|o|ou|s|g|admd|prmd)=", re.I)
_NOT_A_RECIPIENT = re.compile(
    r"^(?:mailer-?daemon|mail-?daemon|postmaster|mdaemon|abuse|microsoftexchange[0-9a-f]{32}"
    r"|bounce\+[0-9a-f]{32})@",
    re.IGNORECASE,
)
MAX_NOTICE_CHARS = 100_000


def header_text(value: object) -> str:
    """A header value as text, RFC 2047 encoded words decoded; never raises."""
    if value is None:
        return ""
    text = str(value)
    if "=?" not in text:
        return " ".join(text.split())
    try:
        return " ".join(str(make_header(decode_header(text))).split())
    except (LookupError, ValueError, UnicodeError, AssertionError, MessageError):
        return " ".join(text.split())


def part_text(part: Message) -> str:
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    try:  # an unknown or malformed charset name, a codec failing on odd input (utf-7)
        return raw.decode(str(part.get_content_charset() or "utf-8"), "replace")
    except (LookupError, ValueError):
        return raw.decode("utf-8", "replace")


def html_to_text(markup: str) -> str:
    lowered = markup.lower()
    kept: list[str] = []
    position = 0
    unclosed: set[str] = set()
    while (match := _HTML_HIDDEN.search(markup, position)) is not None:
        name = match.group(1).lower()
        # str.find rather than a lazy regex, and each missing closing tag looked for once:
        # one pass over the text whatever it holds.
        end = -1 if name in unclosed else lowered.find(f"</{name}", match.end())
        kept.append(markup[position : match.start()])
        if end < 0:
            unclosed.add(name)
            end = match.end()
        position = end
    kept.append(markup[position:])
    text = _HTML_BREAK.sub("\n", "".join(kept))
    return html.unescape(_HTML_TAG.sub(" ", text))


def _inside_messages(message: Message) -> set[int]:
    """ids of every part inside an attached message (the original), which never counts."""
    inside: set[int] = set()
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "message/global") and part is not message:
            inside.update(id(p) for p in part.walk() if p is not part)
    return inside


def notice_text(message: Message) -> str:
    """The human-readable notice: the first text/plain part outside attached messages (the
    first text/html one, stripped, when there is none), without quoted lines and without the
    copy of the original that plain-text notices append."""
    inside = _inside_messages(message)
    plain: Message | None = None
    markup: Message | None = None
    for part in message.walk():
        if id(part) in inside or part.is_multipart():
            continue
        if str(part.get("Content-Disposition") or "").lower().startswith("attachment"):
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and plain is None and part_text(part).strip():
            plain = part
        elif ctype == "text/html" and markup is None:
            markup = part
    if plain is not None:
        text = part_text(plain)[:MAX_NOTICE_CHARS]
    elif markup is not None:
        text = html_to_text(part_text(markup)[: MAX_NOTICE_CHARS * 4])[:MAX_NOTICE_CHARS]
    else:
        return ""
    text = text.replace("\r\n", "\n")
    cut = _ORIGINAL_STARTS.search(text)
    if cut is not None:
        text = text[: cut.start()]
    return _QUOTED.sub("", text)


def clean_address(value: object) -> str | None:
    """A recipient as written in a report -> the bare address, or None when it is not an
    address we could have sent to ('rfc822; <Ann@Example.org> (Ann)' -> 'ann@example.org';
    'x400; /C=DE/...', 'IMCEAEX-...@...' and local-only names -> None)."""
    try:  # 8-bit header bytes arrive surrogate-escaped: read them as UTF-8
        text = str(value or "").encode("utf-8", "surrogateescape").decode("utf-8").strip()
    except UnicodeError:
        return None
    kind, sep, rest = text.partition(";")
    if sep and "@" not in kind:
        kind = kind.strip().lower()
        if kind not in ("rfc822", "utf-8", "utf8", "unknown", ""):
            return None
        text = rest
        if kind.startswith("utf"):
            text = _UTF8_ESCAPE.sub(_unescape, text)
    text = _COMMENT.sub(" ", text).strip()
    bracketed = re.search(r"<([^<>]*)>", text)
    if bracketed:
        text = bracketed.group(1)
    text = text.strip().strip("\"'").strip().rstrip(".").lower()
    if not text or _GATEWAY_FORM.search(text) or not _EMAIL.fullmatch(text):
        return None
    return text


def _unescape(match: re.Match[str]) -> str:
    """RFC 6533 "\\x{HEX}"; an impossible code point makes the address unreadable."""
    code = int(match.group(1), 16)
    return chr(code) if code < 0x110000 and not 0xD800 <= code < 0xE000 else "\x00"


def printable(value: str | None) -> str | None:
    """A string fit for an activity row and a log line: control characters and lone
    surrogates replaced, whitespace collapsed."""
    if value is None:
        return None
    return " ".join(_UNPRINTABLE.sub("\ufffd", value).split()) or None


def find_addresses(text: str) -> list[str]:
    """Every address-shaped string in a text, lower-cased, in order."""
    return [m.group(0).lower() for m in _ADDRESS_IN_TEXT.finditer(text)]


def addresses_in(text: str, exclude: Iterable[str] = ()) -> list[str]:
    """Addresses named in a notice, in order, without those that cannot be the failed
    recipient (the sender, postmasters, our own return path)."""
    skip = {a.lower() for a in exclude}
    found: list[str] = []
    for match in _ADDRESS_IN_TEXT.finditer(text):
        if _SENDER_LABEL.search(text, max(0, match.start() - 40), match.start()):
            continue
        address = clean_address(match.group(0))
        if address and address not in skip and address not in found and is_recipient(address):
            found.append(address)
    return found


def is_recipient(address: str) -> bool:
    """Not a postmaster, an Exchange system mailbox or our own return path."""
    return not _NOT_A_RECIPIENT.search(address)


def paragraphs(notice: str, addresses: Sequence[str]) -> dict[str, str]:
    """Each address's own text: from every place the notice names it up to where it names
    another recipient (Exchange lists the reasons first and the server replies later). One
    pass over the notice, however many recipients."""
    wanted = set(addresses)
    marks = [
        (m.start(), m.group(0).lower())
        for m in _ADDRESS_IN_TEXT.finditer(notice)
        if m.group(0).lower() in wanted
    ]
    out: dict[str, list[str]] = {a: [] for a in addresses}
    for index, (start, address) in enumerate(marks):
        end = marks[index + 1][0] if index + 1 < len(marks) else len(notice)
        out[address].append(notice[start:end])
    return {a: "\n".join(parts) for a, parts in out.items()}
