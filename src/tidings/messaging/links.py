"""Signed links inside emails: unsubscribe (RFC 8058 one-click), preferences, opt-in confirmation;
and the CSRF tokens of the forms on the pages they open.

itsdangerous signs the payload with the instance's secret key. Expiry of a confirmation link is
checked against the injected clock (the issue time is inside the signed payload), not against
the wall clock, so tests and `simulate` can move time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from tidings.auth.signing import signing_keys
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.errors import NotFound, ValidationFailed
from tidings.fastsign import fast_dumps


@dataclass(frozen=True, slots=True)
class UnsubscribeTarget:
    contact_id: int
    message_token: str | None  # the outbox message the link came from, if any
    list_id: int | None


@dataclass(frozen=True, slots=True)
class Confirmation:
    contact_id: int
    list_id: int | None
    issued: datetime  # when the link was made: the pending membership it confirms is not newer


class LinkSigner:
    def __init__(self, secret: str | Sequence[str], base_url: str) -> None:
        """`secret`: one key, or the keys oldest first (the last signs, all verify)."""
        self._unsubscribe = URLSafeSerializer(secret, salt="tidings.unsubscribe")
        self._preferences = URLSafeSerializer(secret, salt="tidings.preferences")
        self._confirm = URLSafeSerializer(secret, salt="tidings.confirm")
        self.base_url = base_url.rstrip("/")
        # Form tokens live for one page view: the newest key alone makes and checks them.
        current = secret if isinstance(secret, str) else secret[-1]
        self._form_key = hashlib.sha256(b"tidings.form\0" + current.encode()).digest()
        # Made once: the sender signs two of these links per message.
        self._dump_unsubscribe = fast_dumps(self._unsubscribe)
        self._dump_preferences = fast_dumps(self._preferences)

    @classmethod
    def from_settings(cls, settings: Settings, database: Database) -> LinkSigner:
        """Links signed by the instance's keys, under its public base URL."""
        return cls(signing_keys(settings, database), settings.base_url)

    # --- unsubscribe --------------------------------------------------------------------------
    def unsubscribe_token(
        self, contact_id: int, message_token: str | None = None, list_id: int | None = None
    ) -> str:
        return self._dump_unsubscribe([contact_id, message_token, list_id])

    def unsubscribe_url(
        self, contact_id: int, message_token: str | None = None, list_id: int | None = None
    ) -> str:
        token = self.unsubscribe_token(contact_id, message_token, list_id)
        return f"{self.base_url}/u/{token}"

    def read_unsubscribe(self, token: str) -> UnsubscribeTarget:
        payload = _load(self._unsubscribe, token, "unsubscribe link")
        try:
            contact_id, message_token, list_id = payload
            return UnsubscribeTarget(int(contact_id), message_token, list_id)
        except (TypeError, ValueError):
            raise NotFound("unsubscribe link is not valid") from None

    # --- preferences ----------------------------------------------------------------------------
    def preferences_url(self, contact_id: int) -> str:
        return f"{self.base_url}/preferences/{self._dump_preferences(contact_id)}"

    def read_preferences(self, token: str) -> int:
        payload = _load(self._preferences, token, "preference link")
        if not isinstance(payload, int):
            raise NotFound("preference link is not valid")
        return payload

    # --- double opt-in --------------------------------------------------------------------------
    def confirm_url(self, contact_id: int, list_id: int | None, issued: datetime) -> str:
        token = self._confirm.dumps([contact_id, list_id, int(issued.timestamp())])
        return f"{self.base_url}/confirm/{token}"

    def read_confirmation(self, token: str, *, now: datetime, max_age: timedelta) -> Confirmation:
        payload = _load(self._confirm, token, "confirmation link")
        try:
            contact_id, list_id, issued = payload
            issued_at = datetime.fromtimestamp(int(issued), tz=now.tzinfo)
        except (TypeError, ValueError, OverflowError):
            raise NotFound("confirmation link is not valid") from None
        if now - issued_at > max_age:
            raise ValidationFailed("confirmation link has expired; subscribe again")
        return Confirmation(int(contact_id), list_id, issued_at)

    # --- forms on the public pages (CSRF) -------------------------------------------------------
    def form_token(self, link_token: str) -> str:
        """A token for a form on the page of `link_token`: a fresh nonce and its MAC, so only
        a page this instance rendered for that very link can post to it."""
        nonce = secrets.token_urlsafe(12)
        return f"{nonce}.{self._form_mac(link_token, nonce)}"

    def check_form_token(self, link_token: str, value: str | None) -> bool:
        nonce, _, mac = (value or "").partition(".")
        return bool(nonce) and hmac.compare_digest(mac, self._form_mac(link_token, nonce))

    def _form_mac(self, link_token: str, nonce: str) -> str:
        message = f"{link_token}\0{nonce}".encode()
        digest = hmac.new(self._form_key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()


def _load(serializer: URLSafeSerializer, token: str, what: str) -> Any:
    try:
        return serializer.loads(token)
    except BadSignature:
        raise NotFound(f"{what} is not valid") from None
