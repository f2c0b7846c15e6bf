"""Cheaper `dumps` for itsdangerous serializers on the sending hot path.

`Serializer.dumps` builds a new Signer and derives its HMAC key from the secret on every call;
a broadcast makes four tokens per message (the events package's tracking tokens and the
messaging package's link tokens, hence a module beside both). Here the signer and the keyed
HMAC are made once and copied per token, and the payloads the sender signs (an int, or a list
of ints, strings and None) are written as JSON directly instead of through a new
`json.JSONEncoder` per call.

The output is what `serializer.dumps` returns (tested), with one exception: a URL-safe
payload shorter than `COMPRESS_FROM` bytes is never compressed, where itsdangerous tries zlib
on every payload and keeps the result when it is shorter. The attempt costs more than the rest
of the token (zlib sets up and frees a few hundred KB of state per call), and on a payload that
short it saves a few bytes at most, usually none (an id and a random message token do not
compress). `serializer.loads` reads both forms: it decompresses only a payload marked with a
leading dot.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import zlib
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

from itsdangerous import Serializer, TimestampSigner
from itsdangerous.encoding import base64_encode, int_to_bytes
from itsdangerous.signer import HMACAlgorithm
from itsdangerous.url_safe import URLSafeSerializerMixin

# URL-safe payloads shorter than this (in bytes of JSON) are not compressed.
COMPRESS_FROM = 128

_COMPACT_JSON: Any = None  # the serializers' default JSON module (private, so looked up)
with contextlib.suppress(ImportError):  # else every serializer keeps its own dump_payload
    from itsdangerous._json import _CompactJSON as _COMPACT_JSON


def _json_item(value: Any) -> str | None:
    """`value` as itsdangerous' compact JSON (ensure_ascii=False) writes it, or None."""
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    return None


def _simple_json(value: Any) -> str | None:
    """An int, or a flat list of ints, strings and None, as compact JSON; None otherwise."""
    if type(value) is not list:
        return _json_item(value)
    items = [_json_item(item) for item in value]
    if None in items:
        return None
    return "[" + ",".join(items) + "]"  # type: ignore[arg-type]


def _payload_dumper(serializer: Serializer[str]) -> Callable[[Any], bytes]:
    """`serializer.dump_payload`, with the JSON step done by `_simple_json` when it can."""
    generic = serializer.dump_payload
    if _COMPACT_JSON is None or serializer.serializer is not _COMPACT_JSON:
        return generic
    if serializer.serializer_kwargs:  # options for json.dumps: the generic path applies them
        return generic
    url_safe = isinstance(serializer, URLSafeSerializerMixin)

    def dump_payload(obj: Any) -> bytes:
        text = _simple_json(obj)
        if text is None:
            return generic(obj)
        json = text.encode("utf-8")
        if not url_safe:
            return json
        if len(json) < COMPRESS_FROM:
            return base64_encode(json)
        # URLSafeSerializerMixin.dump_payload: compressed only when that is shorter.
        compressed = zlib.compress(json)
        if len(compressed) < len(json) - 1:
            return b"." + base64_encode(compressed)
        return base64_encode(json)

    return dump_payload


def fast_dumps(serializer: Serializer[str]) -> Callable[[Any], str]:
    """A `dumps` for one serializer; falls back to the serializer's own for unusual setups."""
    signer = serializer.make_signer()
    algorithm = signer.algorithm
    if not isinstance(algorithm, HMACAlgorithm) or not serializer.is_text_serializer:
        return serializer.dumps
    keyed = hmac.new(signer.derive_key(), digestmod=algorithm.digest_method)
    sep = signer.sep
    timed = signer if isinstance(signer, TimestampSigner) else None
    dump_payload = _payload_dumper(serializer)

    def dumps(obj: Any) -> str:
        value = dump_payload(obj)
        if timed is not None:
            stamp = int_to_bytes(timed.get_timestamp())
            value = value + sep + base64.urlsafe_b64encode(stamp).rstrip(b"=")
        mac = keyed.copy()
        mac.update(value)
        signature = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=")
        return (value + sep + signature).decode("utf-8")

    return dumps
