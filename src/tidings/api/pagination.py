"""Opaque keyset cursors: the last id seen, so pages stay stable while rows are added."""

from __future__ import annotations

import base64
import binascii

from tidings.errors import ValidationFailed
from tidings.inputs import MAX_ID

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        last_id = int(value)
        if kind != "id" or not 0 <= last_id <= MAX_ID:
            raise ValueError(kind)
        return last_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("cursor: not a cursor returned by this API") from None
