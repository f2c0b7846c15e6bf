"""SMTP delivery with aiosmtplib: long-lived connections, and a DATA phase that lets the caller
commit "delivering" right before the final dot.

Why the hook: a message is delivered the moment the server has the final dot. If the sender
dies after that but before it records "sent", a restart would send it again. Committing first
and writing the dot a few microseconds later moves the unavoidable window to the other side:
a crash then can only lose a message (practically never), never double it, and a row found in
`delivering` after a crash is known to have been handed over.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from tidings.errors import ValidationFailed

_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    use_tls: bool = False
    start_tls: bool | None = False
    username: str | None = None
    password: str | None = None
    validate_certs: bool = True
    timeout: float = 30.0


def parse_smtp_url(url: str, *, timeout: float = 30.0) -> SmtpConfig:
    """smtp://host:25, smtp://user:pass@host:587?starttls=true, smtps://user:pass@host:465.

    `?verify=false` accepts a self-signed certificate (local relays only).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValidationFailed(f"smtp_url: expected smtp://host:port or smtps://..., got {url!r}")
    query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
    tls = parts.scheme == "smtps"
    starttls = query.get("starttls") in ("1", "true", "yes")
    return SmtpConfig(
        host=parts.hostname,
        port=parts.port or (465 if tls else 25),
        use_tls=tls,
        start_tls=bool(starttls),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        validate_certs=query.get("verify") not in ("0", "false", "no"),
        timeout=timeout,
    )


@dataclass(frozen=True, slots=True)
class SmtpResult:
    """What the server said. `stage` tells where it happened (connect, mail, rcpt, data)."""

    ok: bool
    code: int
    message: str
    stage: str
    # Set when the message may have reached the server (the dot was written).
    handed_over: bool = False

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    @property
    def enhanced(self) -> str | None:
        match = _ENHANCED.search(self.message)
        return match.group(1) if match else None


WriteDot = Callable[[], None]
# Called with a function that writes the final dot; returns whether to finish the message
# (it may write the dot itself, right after its commit, or leave it to the caller).
BeforeDot = Callable[[WriteDot], Awaitable[bool]]


class SmtpConnection:
    """One long-lived connection; reconnects on the next send after any failure."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._client: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        c = self.config
        client = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            use_tls=c.use_tls,
            start_tls=c.start_tls,
            username=c.username,
            password=c.password,
            validate_certs=c.validate_certs,
            timeout=c.timeout,
        )
        await client.connect()
        self._client = client
        return client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def send(
        self, mail_from: str, rcpt_to: str, data: bytes, before_dot: BeforeDot
    ) -> SmtpResult:
        stage = "connect"
        handed_over = False
        try:
            client = await self._connected()
            stage = "mail"
            await client.mail(mail_from)
            stage = "rcpt"
            await client.rcpt(rcpt_to)
            stage = "data"
            response, handed_over = await self._data(client, data, before_dot)
            return SmtpResult(True, response.code, response.message, stage, True)
        except aiosmtplib.SMTPResponseException as exc:
            if stage in ("mail", "rcpt"):
                await self._reset(client)
            else:
                self._drop()
            return SmtpResult(False, exc.code, exc.message, stage, handed_over)
        except _Aborted:
            self._drop()
            return SmtpResult(False, 0, "aborted before the final dot: lease lost", stage)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            self._drop()
            message = str(exc) or type(exc).__name__
            return SmtpResult(False, 421, f"connection problem: {message}", stage, handed_over)
        except BaseException:
            self._drop()  # e.g. the database failed in before_dot: never finish this DATA
            raise

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._drop()

    async def _data(
        self, client: aiosmtplib.SMTP, data: bytes, before_dot: BeforeDot
    ) -> tuple[aiosmtplib.SMTPResponse, bool]:
        # aiosmtplib's execute_data_command, split at the final dot. Uses the protocol's
        # command lock and reply flag as that method does (aiosmtplib >= 3).
        protocol = client.protocol
        if protocol is None or protocol._command_lock is None:
            raise aiosmtplib.SMTPServerDisconnected("not connected")
        body = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data))
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        timeout = self.config.timeout
        async with protocol._command_lock:
            protocol._response_pending = True
            protocol.write(b"DATA\r\n")
            start = await protocol.read_response(timeout=timeout)
            if start.code != 354:
                raise aiosmtplib.SMTPDataError(start.code, start.message)
            protocol.write(body)
            written = False

            def write_dot() -> None:
                nonlocal written
                if not written:
                    written = True
                    protocol._response_pending = True
                    protocol.write(b".\r\n")

            if not await before_dot(write_dot):
                raise _Aborted
            write_dot()
            try:
                response = await protocol.read_response(timeout=timeout)
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                raise _AfterDot(str(exc) or type(exc).__name__) from exc
        if response.code != 250:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
        return response, True


class _Aborted(Exception):
    pass


class _AfterDot(aiosmtplib.SMTPException):
    """The connection broke after the final dot: the server may or may not have the message."""
