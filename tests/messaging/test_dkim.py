"""DKIM signatures made by the sender's fast path, checked by an independent verifier (dkimpy):
oversigned headers (RFC 6376 8.15) make a header prepended in transit break the signature."""

from __future__ import annotations

from datetime import UTC, datetime

import dkim

from tidings.messaging.compose import Headers, build_message
from tidings.messaging.dkim import DkimSigner


def _signed(signer: DkimSigner) -> bytes:
    headers = Headers(
        from_="Shop <news@example.com>",
        to="ann@example.org",
        subject="Spring offers",
        date=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        message_id="0123abcd@example.com",
        list_unsubscribe=["https://mail.example.com/u/TOKEN", "mailto:u@example.com"],
        one_click=True,
    )
    message = build_message(headers, "<p>Hello <a href='https://example.com/'>shop</a></p>", None)
    return signer.sign(message, timestamp=1_772_441_000)


def _h_tag(message: bytes) -> list[str]:
    head = message.partition(b"\r\n\r\n")[0].decode()
    value = head.split("DKIM-Signature:", 1)[1].split("bh=")[0]
    names = value.replace("\r\n", "").replace("\t", "").split("h=")[1].split(";")[0]
    return names.split(":")


def test_oversigned_headers_cannot_be_added_in_transit(dkim_signer: DkimSigner) -> None:
    record = dkim_signer.dns_record().encode()

    def verify(message: bytes) -> bool:
        return bool(dkim.verify(message, dnsfunc=lambda name, timeout=5: record))

    message = _signed(dkim_signer)
    assert verify(message)
    names = _h_tag(message)
    for name in ("from", "to", "subject", "date", "message-id", "list-unsubscribe"):
        assert names.count(name) == 2, name  # one instance, listed twice
    assert names.count("list-unsubscribe-post") == 2
    assert names.count("reply-to") == 1  # absent: signed as absent
    assert names.count("mime-version") == 1 and names.count("content-type") == 1
    # A second From or List-Unsubscribe put on top (what a reader would show) breaks it.
    assert not verify(b"From: Bank <security@bank.example>\r\n" + message)
    assert not verify(b"List-Unsubscribe: <https://evil.example/u>\r\n" + message)
    assert not verify(b"Reply-To: thief@evil.example\r\n" + message)
    # A header nobody signs may still be added (Received, trace headers).
    assert verify(b"Received: from relay.example by mx.example.org\r\n" + message)


def test_headers_that_occur_twice_are_signed_twice_and_once_more(
    dkim_signer: DkimSigner,
) -> None:
    record = dkim_signer.dns_record().encode()
    message = b"From: a@example.com\r\nTo: b@example.org\r\nTo: c@example.org\r\n\r\nhi\r\n"
    signed = dkim_signer.sign(message, timestamp=1)
    assert _h_tag(signed).count("to") == 3
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)
    assert not dkim.verify(
        b"To: d@example.org\r\n" + signed, dnsfunc=lambda name, timeout=5: record
    )
