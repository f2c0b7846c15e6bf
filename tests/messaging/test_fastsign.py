"""The sender's cached token signing produces the tokens itsdangerous makes (short payloads
uncompressed), and itsdangerous reads them."""

from __future__ import annotations

from datetime import UTC, datetime

from itsdangerous import URLSafeSerializer

from tidings.clock import FakeClock
from tidings.events.tokens import TrackingTokens
from tidings.fastsign import COMPRESS_FROM, _payload_dumper, fast_dumps
from tidings.messaging.dkim import DkimSigner, generate_key
from tidings.messaging.links import LinkSigner
from tidings.messaging.tracking import Tracker


def test_plain_serializer_tokens_are_identical() -> None:
    serializer = URLSafeSerializer("secret", salt="tidings.unsubscribe")
    dumps = fast_dumps(serializer)
    assert _payload_dumper(serializer) != serializer.dump_payload  # the direct JSON path
    payloads: list[object] = [[1, "tok", None], 42, [7, "x" * 300, 3], ["é", None, None]]
    # Escapes, non-ASCII, negative and big ints, and what the direct JSON path leaves to
    # itsdangerous (bools, floats, nested lists, dicts, a bare string or None).
    payloads += [['q"\\/\n\t\x00\x1f\x7f\u2028 \U0001f600'], [-3, 10**30, ""], []]
    payloads += [[True, False], [1.5], [[1, 2]], {"a": 1}, "text", None, [None]]
    for payload in payloads:
        assert serializer.loads(dumps(payload)) == payload
        if payload == [-3, 10**30, ""]:  # short, and itsdangerous compresses it
            continue
        assert dumps(payload) == serializer.dumps(payload)


def test_short_payloads_are_not_compressed_and_still_load() -> None:
    serializer = URLSafeSerializer("secret", salt="tidings.unsubscribe")
    dumps = fast_dumps(serializer)
    short = [-3, 10**30, ""]  # the zeros compress: itsdangerous writes it compressed
    assert serializer.dumps(short).startswith(".")
    assert not dumps(short).startswith(".")
    assert serializer.loads(dumps(short)) == short
    # From COMPRESS_FROM bytes of JSON on, the choice is itsdangerous' own.
    long = [7, "x" * COMPRESS_FROM, 3]
    assert dumps(long).startswith(".")
    assert dumps(long) == serializer.dumps(long)


def test_tracking_tokens_are_identical_and_readable() -> None:
    clock = FakeClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    tokens = TrackingTokens("secret", clock=clock)
    tracker = Tracker(tokens, "https://mail.example.com")
    url = "https://shop.example.com/sale?a=1&b=2"
    # The tracker signs with the fast path; itsdangerous' own dumps is the reference.
    assert tracker.tokens.click_token(5, url, "m1") == tokens._click.dumps([5, url, "m1"])
    assert tracker.tokens.open_token(5, "m1") == tokens._open.dumps([5, "m1"])
    assert tokens.contact_token(5) == tokens._contact.dumps(5)
    assert tokens.read_click(tracker.tokens.click_token(5, url, "m1")).url == url


def test_link_signer_round_trip() -> None:
    links = LinkSigner("secret", "https://mail.example.com")
    token = links.unsubscribe_token(3, "m", 9)
    assert token == URLSafeSerializer("secret", salt="tidings.unsubscribe").dumps([3, "m", 9])
    assert links.read_unsubscribe(token).list_id == 9


def test_split_signing_equals_sign() -> None:
    signer = DkimSigner.from_pem("example.com", "s", generate_key(1024))
    message = b"From: a@example.com\r\nTo: b@example.org\r\nSubject:  Hi\r\n\r\nBody  \r\n"
    tags, to_sign = signer.prepare(message, timestamp=1)
    # PKCS#1 v1.5 signatures are deterministic, so both paths give the same bytes.
    assert signer.finish(message, tags, signer.rsa_sign(to_sign)) == signer.sign(
        message, timestamp=1
    )
