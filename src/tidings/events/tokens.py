"""Signed tracking tokens (itsdangerous), keyed by the server's secret.

Each kind has its own salt, so an open token can never be replayed as a click token. Tokens
carry the time they were made (from the injected clock): an open or click within seconds of
that is the signature of a machine (privacy proxy, link scanner), not of a person.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from tidings.auth.signing import signing_keys
from tidings.clock import Clock, SystemClock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.errors import NotFound
from tidings.fastsign import fast_dumps

MAX_URL = 2_048


class InvalidToken(NotFound):
    """A token that was tampered with, or made with another secret (answered as 404)."""

    def __init__(self) -> None:
        super().__init__("unknown tracking link")


@dataclass(frozen=True, slots=True)
class OpenToken:
    contact_id: int
    message_id: str | None
    issued_at: datetime


@dataclass(frozen=True, slots=True)
class ClickToken:
    contact_id: int
    url: str
    message_id: str | None
    issued_at: datetime


def safe_url(url: str) -> bool:
    """Only absolute http(s) URLs with a host are ever redirected to."""
    if not isinstance(url, str) or len(url) > MAX_URL or any(c in url for c in "\r\n\t\x00"):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# The same few links are sealed for every message of a broadcast.
_safe_link = functools.lru_cache(maxsize=1024)(safe_url)


class TrackingTokens:
    def __init__(self, secret: str | Sequence[str], *, clock: Clock | None = None) -> None:
        """`secret`: one key, or the keys oldest first (the last signs, all verify)."""
        self.keys = (secret,) if isinstance(secret, str) else tuple(secret)
        source: Clock = clock or SystemClock()

        class _ClockSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(source.now().timestamp())

        def serializer(salt: str) -> URLSafeTimedSerializer:
            return URLSafeTimedSerializer(secret, salt=salt, signer=_ClockSigner)

        self._open = serializer("tidings.track.open")
        self._click = serializer("tidings.track.click")
        self._contact = serializer("tidings.track.contact")
        # Made once: a broadcast signs an open and several click tokens per message.
        self._dump_open = fast_dumps(self._open)
        self._dump_click = fast_dumps(self._click)
        self._dump_contact = fast_dumps(self._contact)

    @classmethod
    def from_settings(cls, settings: Settings, database: Database, clock: Clock) -> TrackingTokens:
        """Tokens signed by the instance's keys."""
        return cls(signing_keys(settings, database), clock=clock)

    def open_token(self, contact_id: int, message_id: str | None) -> str:
        return self._dump_open([contact_id, message_id])

    def click_token(self, contact_id: int, url: str, message_id: str | None) -> str:
        if not _safe_link(url):
            raise ValueError(f"not an absolute http(s) URL: {url!r}")
        return self._dump_click([contact_id, url, message_id])

    def contact_token(self, contact_id: int) -> str:
        return self._dump_contact(contact_id)

    @staticmethod
    def _load(serializer: URLSafeTimedSerializer, token: str) -> tuple[Any, datetime]:
        try:
            payload, stamp = serializer.loads(token, return_timestamp=True)
        except (BadData, ValueError, TypeError):
            raise InvalidToken() from None
        return payload, stamp.astimezone(UTC)

    def read_open(self, token: str) -> OpenToken:
        payload, issued = self._load(self._open, token)
        match payload:
            case [int() as contact_id, (str() | None) as message_id] if contact_id > 0:
                return OpenToken(contact_id, message_id, issued)
        raise InvalidToken()

    def read_click(self, token: str) -> ClickToken:
        payload, issued = self._load(self._click, token)
        match payload:
            case [int() as contact_id, str() as url, (str() | None) as message_id] if (
                contact_id > 0 and safe_url(url)
            ):
                return ClickToken(contact_id, url, message_id, issued)
        raise InvalidToken()

    def read_contact(self, token: str) -> int:
        payload, _ = self._load(self._contact, token)
        if isinstance(payload, int) and not isinstance(payload, bool) and payload > 0:
            return payload
        raise InvalidToken()
