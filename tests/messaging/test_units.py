"""Small pure parts: SMTP URLs, rate limits with injected time, backoff, links, rewriting."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tidings.errors import NotFound, ValidationFailed
from tidings.messaging.links import LinkSigner
from tidings.messaging.sender import TokenBucket, allowed_statuses
from tidings.messaging.tracking import add_pixel, rewrite_links
from tidings.messaging.transport import parse_smtp_url
from tidings.retry import backoff


def test_parse_smtp_urls() -> None:
    plain = parse_smtp_url("smtp://127.0.0.1:1025")
    assert (plain.host, plain.port, plain.use_tls, plain.start_tls) == (
        "127.0.0.1",
        1025,
        False,
        False,
    )
    tls = parse_smtp_url("smtps://user%40x:p%3Ass@mail.example.com")
    assert (tls.port, tls.use_tls, tls.username, tls.password) == (465, True, "user@x", "p:ss")
    starttls = parse_smtp_url("smtp://u:p@relay:587?starttls=true&verify=false")
    assert starttls.start_tls is True and starttls.validate_certs is False
    with pytest.raises(ValidationFailed):
        parse_smtp_url("http://x")


def test_token_bucket_waits_with_injected_time() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def main() -> None:
        bucket = TokenBucket(2.0, monotonic=lambda: now[0], sleep=sleep)
        for _ in range(6):
            await bucket.take()

    asyncio.run(main())
    assert sum(slept) == pytest.approx(2.0)  # 6 sends at 2/s with a burst of 2


def test_backoff_and_policy_table() -> None:
    base = timedelta(minutes=1)
    assert [backoff(n, base) for n in (1, 2, 3)] == [base, 2 * base, 4 * base]
    assert backoff(30, base) == timedelta(days=1)
    assert allowed_statuses("campaign") == ["subscribed"]
    assert set(allowed_statuses("automation")) == {"subscribed", "transactional"}


def test_signed_links() -> None:
    links = LinkSigner("k", "https://x.example/")
    token = links.unsubscribe_token(5, "abc")
    assert links.read_unsubscribe(token).contact_id == 5
    with pytest.raises(NotFound):
        LinkSigner("other", "https://x.example").read_unsubscribe(token)
    issued = datetime(2026, 1, 1, tzinfo=UTC)
    url = links.confirm_url(7, 3, issued)
    token = url.rsplit("/", 1)[1]
    assert (
        links.read_confirmation(
            token, now=issued + timedelta(hours=1), max_age=timedelta(hours=2)
        ).list_id
        == 3
    )
    with pytest.raises(ValidationFailed, match="expired"):
        links.read_confirmation(token, now=issued + timedelta(hours=3), max_age=timedelta(hours=2))


def test_rewrite_links_keeps_mailto_anchors_and_kept_urls() -> None:
    html = (
        '<a href="https://a.example/x?y=1&amp;z=2">A</a><a href="mailto:x@y.z">M</a>'
        '<a href=\'#top\'>T</a><A HREF="http://b.example">B</A><a href="https://keep">K</a>'
    )
    out = rewrite_links(html, lambda url: f"https://t/{len(url)}", keep={"https://keep"})
    assert 'href="https://t/27"' in out  # the unescaped URL was passed in
    assert "mailto:x@y.z" in out and "'#top'" in out and 'HREF="https://t/16"' in out
    assert 'href="https://keep"' in out
    assert add_pixel("<html><body>x</body></html>", "https://p").endswith(
        'style="display:none"></body></html>'
    )


def test_smtp_paths_and_data_are_what_aiosmtplib_sends() -> None:
    import random

    from aiosmtplib.email import quote_address
    from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

    from tidings.messaging.transport import _dot_stuffed, smtp_path

    rng = random.Random(5)
    specials = "!#$%&'*+/=?^_`{|}~-.@ \"<>()[],;:\\"
    alphabet = "abcXYZ019" + specials
    for _ in range(5000):
        address = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
        try:
            expected: object = quote_address(address).encode("ascii")
        except ValueError as exc:
            expected = type(exc)
        try:
            got: object = smtp_path(address)
        except ValueError as exc:
            got = type(exc)
        assert got == expected, address
    assert smtp_path("bounce+t0k@bounces.example.com") == b"<bounce+t0k@bounces.example.com>"
    pieces = [b"a", b".", b"..", b"\r\n", b"\n", b"\r", b" ", b"x.y"]
    for _ in range(5000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        expected_data = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data))
        got_data = _dot_stuffed(data)
        if not got_data.endswith(b"\r\n"):
            got_data += b"\r\n"
        assert got_data == expected_data, data


@pytest.mark.parametrize("silent_at", ["MAIL", "RCPT", "dot"])
def test_a_reply_that_never_comes_times_out(silent_at: str) -> None:
    """Each reply is due within the timeout after its command, the second message's too (the
    connection's one timer follows the replies' deadlines)."""

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 ready\r\n")
        messages, in_data = 0, False
        while line := await reader.readline():
            command = line[:4].upper().decode()
            if in_data:
                if line == b".\r\n":
                    in_data, messages = False, messages + 1
                    if silent_at == "dot" and messages == 2:
                        continue
                    writer.write(b"250 queued\r\n")
                continue
            if command == silent_at and messages == 1:
                continue  # the second message's command: no answer
            if command == "DATA":
                in_data = True
                writer.write(b"354 go on\r\n")
            else:
                writer.write(b"250 ok\r\n")

    (first, took_first), (second, took) = _send_two(server, timeout=0.4)
    assert (first.ok, first.code, first.stage) == (True, 250, "data") and took_first < 0.4
    assert (second.ok, second.code) == (False, 421) and "Timed out" in second.message
    assert second.stage == {"MAIL": "mail", "RCPT": "rcpt", "dot": "data"}[silent_at]
    assert 0.35 <= took < 3


@pytest.mark.parametrize(
    ("refuse_at", "reply", "stage"),
    [
        ("MAIL", b"451 later", "mail"),
        ("RCPT", b"550 no such user", "rcpt"),
        ("DATA", b"554 no", "data"),
    ],
)
def test_a_refusal_mid_envelope_stops_the_message_and_the_next_one_goes(
    refuse_at: str, reply: bytes, stage: str
) -> None:
    """MAIL, RCPT and DATA go out one after the other as their replies come; the first
    unexpected reply ends the message at its stage, with aiosmtplib's code and text."""
    commands: list[str] = []

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 ready\r\n")
        in_data = False
        while line := await reader.readline():
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    writer.write(b"250 queued\r\n")
                continue
            command = line[:4].upper().decode()
            commands.append(command)
            if command == refuse_at and commands.count(command) == 1:
                writer.write(reply + b"\r\n")
            elif command == "DATA":
                in_data = True
                writer.write(b"354 go on\r\n")
            else:
                writer.write(b"250 ok\r\n")

    refused, then = (result for result, _ in _send_two(server, timeout=5))
    code = int(reply[:3])
    assert (refused.ok, refused.code, refused.stage, refused.message) == (
        False,
        code,
        stage,
        reply[4:].decode(),
    )
    assert (then.ok, then.code, then.stage, then.message) == (True, 250, "data", "queued")
    after = commands[commands.index(refuse_at) + 1 :]
    assert after[:1] == (["RSET"] if stage in ("mail", "rcpt") else ["EHLO"])  # else reconnects


def _send_two(server: Any, *, timeout: float) -> list[tuple[Any, float]]:
    """Two messages through one SmtpConnection to `server` (an asyncio stream handler) on
    loopback: each one's result and how long it took."""
    from tidings.messaging.transport import SmtpConfig, SmtpConnection

    async def main() -> list[tuple[Any, float]]:
        listening = await asyncio.start_server(server, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        connection = SmtpConnection(SmtpConfig("127.0.0.1", port, timeout=timeout))

        async def before_dot(write_dot: object) -> bool:
            return True

        seen = []
        try:
            for _ in range(2):
                start = time.monotonic()
                sending = connection.send(
                    "a@example.com", "b@example.org", b"Subject: x\r\n\r\nhi\r\n", before_dot
                )
                result = await asyncio.wait_for(sending, 5)  # fails, not hangs, without a timeout
                seen.append((result, time.monotonic() - start))
        finally:
            await connection.close()
            listening.close()
        return seen

    return asyncio.run(main())
