"""SMTP delivery with aiosmtplib: long-lived connections, and a DATA phase that lets the caller
commit "delivering" right before the final dot.

Why the hook: a message is delivered the moment the server has the final dot. If the sender
dies after that but before it records "sent", a restart would send it again. Committing first
and writing the dot a few microseconds later moves the unavoidable window to the other side:
a crash then can only lose a message (practically never), never double it, and a row found in
`delivering` after a crash is known to have been handed over.

The hook runs once the server has answered DATA with 354, and the body goes out together with
the final dot in ONE write right after the commit: the server accepts nothing before the dot,
so where the body is written does not matter, and one write instead of two halves the
server's wake-ups. Once the kernel has taken the bytes, even a killed sender's socket still
delivers them, so the window is only the stretch between the commit and that write.

PIPELINING (RFC 2920): when the server announces it, MAIL, RCPT and DATA go out in one write
and their three replies are read together, so a message costs two round trips (that batch, then
body and dot) instead of four; over the internet, where a round trip costs tens of
milliseconds, that doubles what a connection carries. Every reply is still checked: a refused
MAIL or RCPT fails that message as before (the server then refuses the DATA too; should it
answer 354 anyway, the connection is dropped so that no empty message can go out). The pre-dot
check runs after the 354 exactly as without pipelining. A server that does not announce it gets
the commands one after the other.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import PERIOD_REGEX, SMTPProtocol, normalize_message_line_endings

from tidings.errors import ValidationFailed

_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
# A dot-atom address (RFC 5321 4.1.2 without quoting): aiosmtplib's quote_address returns it
# unchanged in <>, so its parser (email.utils.parseaddr, ~20 us) is skipped for these.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def smtp_path(address: str) -> bytes:
    """The <path> of MAIL FROM / RCPT TO, exactly as aiosmtplib's mail()/rcpt() send it."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>".encode("ascii")
    return quote_address(address).encode("ascii")


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
    # The EHLO name (TIDINGS_SMTP_HELO; options.default_helo otherwise); None: aiosmtplib's
    # default, the machine's FQDN.
    helo: str | None = None
    # Close and reopen the connection after this many messages (0: never); per destination.
    messages_per_connection: int = 0
    # Pipeline MAIL, RCPT and DATA when the server announces PIPELINING.
    pipelining: bool = True


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
# Called with a function that writes the body and the final dot (in one write); returns
# whether to finish the message (it may call it itself, right after its commit, or leave it to
# the caller).
BeforeDot = Callable[[WriteDot], Awaitable[bool]]


class SmtpConnection:
    """One long-lived connection; reconnects on the next send after any failure."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._client: aiosmtplib.SMTP | None = None
        # The reply awaited now, the time by which it must come, and the one timer that
        # checks it (see _reply).
        self._awaited: asyncio.Future[aiosmtplib.SMTPResponse] | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._messages = 0  # transactions begun on the current connection

    async def _connected(self) -> aiosmtplib.SMTP:
        limit = self.config.messages_per_connection
        if self._client is not None and limit and self._messages >= limit:
            await self.close()  # QUIT; the next connection starts afresh
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
            local_hostname=c.helo,
        )
        await client.connect()
        self._client, self._messages = client, 0
        return client

    def _pipelines(self, client: aiosmtplib.SMTP) -> bool:
        return self.config.pipelining and client.supports_extension("pipelining")

    async def close(self) -> None:
        self._stop_timer()
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()

    def _drop(self) -> None:
        self._stop_timer()
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    async def send(
        self, mail_from: str, rcpt_to: str, data: bytes, before_dot: BeforeDot
    ) -> SmtpResult:
        stage = "connect"
        handed_over = False
        envelope: _Envelope | None = None
        try:
            client = await self._connected()
            stage = "mail"
            if client.is_ehlo_or_helo_needed:
                await client._ehlo_or_helo_if_needed()
            protocol = client.protocol
            if protocol is None or protocol._command_lock is None:
                raise aiosmtplib.SMTPServerDisconnected("not connected")
            # One transaction under the protocol's command lock, with the bytes and checks
            # of client.mail(), rcpt() and data(), but without their per-command overhead
            # (address parsing, a lock and a wait_for() per command): about half of this
            # client's work per message.
            async with protocol._command_lock:
                self._messages += 1
                kind = _Pipelined if self._pipelines(client) else _Envelope
                envelope = kind(self, protocol, mail_from, rcpt_to)
                try:
                    reply = await self._reply(protocol)
                finally:
                    stage = envelope.stage
                if reply.code not in envelope.expected:
                    raise envelope.refused(reply)
                response, handed_over = await self._data(protocol, data, before_dot)
            return SmtpResult(True, response.code, response.message, stage, True)
        except aiosmtplib.SMTPResponseException as exc:
            if envelope is not None and envelope.data_open:
                self._drop()  # DATA was accepted after a refusal: never end it with a dot
            elif stage in ("mail", "rcpt") and exc.code != 421:
                await self._reset(client)
            else:
                self._drop()  # 421: the server is closing (aiosmtplib closes on it too)
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

    async def _reply(self, protocol: SMTPProtocol) -> aiosmtplib.SMTPResponse:
        """protocol.read_response(), each reply due within the timeout, without a timer per
        reply: wait_for() costs a task-like future, callbacks and a handle per reply, and a
        call_later() a heap entry to make and cancel. Here a reply only sets its deadline;
        one timer per connection checks it (_check_deadline)."""
        waiter = protocol._response_waiter
        if waiter is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        protocol._response_pending = True
        loop = asyncio.get_running_loop()
        self._awaited, self._deadline = waiter, loop.time() + self.config.timeout
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._check_deadline)
        try:
            return await waiter
        finally:
            self._awaited = None
            protocol._response_pending = False
            protocol._response_waiter = None if protocol.transport is None else loop.create_future()

    def _check_deadline(self) -> None:
        """The timer: times out the reply awaited now if its deadline has passed, else waits
        for that deadline (a later reply's); with no reply awaited it stops until the next."""
        self._timer = None
        if self._awaited is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._check_deadline)
        else:
            _time_out(self._awaited)

    async def _data(
        self, protocol: SMTPProtocol, data: bytes, before_dot: BeforeDot
    ) -> tuple[aiosmtplib.SMTPResponse, bool]:
        # aiosmtplib's execute_data_command after its 354, split at the final dot (the caller
        # holds the protocol's command lock, as that method does).
        body = _dot_stuffed(data)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        body += b".\r\n"
        written = False

        def write_dot() -> None:
            nonlocal written
            if not written:
                written = True
                protocol._response_pending = True
                protocol.write(body)  # the body and the final dot

        if not await before_dot(write_dot):
            raise _Aborted
        write_dot()
        try:
            response = await self._reply(protocol)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise _AfterDot(str(exc) or type(exc).__name__) from exc
        if response.code != 250:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
        return response, True


class _Envelope(asyncio.Future[aiosmtplib.SMTPResponse]):
    """MAIL, RCPT and DATA of one message, each written as soon as the previous one's reply
    is the expected one, right inside the protocol's data_received (which hands this waiter
    each reply through set_result). It resolves, waking the sender, only with DATA's reply or
    the first unexpected one: one pass of the event loop and one wake-up of the sender per
    message instead of one per command. The bytes and checks are client.mail(), rcpt() and
    data()'s; each reply is still due within the timeout after its command."""

    def __init__(
        self, connection: SmtpConnection, protocol: SMTPProtocol, mail_from: str, rcpt_to: str
    ) -> None:
        super().__init__(loop=asyncio.get_running_loop())
        self.connection, self.protocol = connection, protocol
        self.mail_from, self.rcpt_to = mail_from, rcpt_to
        self.commands = (
            ("mail", b"MAIL FROM:" + smtp_path(mail_from) + b"\r\n", (250,)),
            ("rcpt", b"RCPT TO:" + smtp_path(rcpt_to) + b"\r\n", (250, 251)),
            ("data", b"DATA\r\n", (354,)),
        )
        self.step = 0
        # True when the server answered DATA with 354 although MAIL or RCPT was refused.
        self.data_open = False
        protocol._response_waiter = self
        protocol._response_pending = True
        self.start()

    def start(self) -> None:
        self.protocol.write(self.commands[0][1])

    @property
    def stage(self) -> str:
        return self.commands[self.step][0]

    @property
    def expected(self) -> tuple[int, ...]:
        return self.commands[self.step][2]

    def refused(self, reply: aiosmtplib.SMTPResponse) -> aiosmtplib.SMTPResponseException:
        """The exception aiosmtplib raises for this unexpected reply at this stage."""
        if self.stage == "mail":
            return aiosmtplib.SMTPSenderRefused(reply.code, reply.message, self.mail_from)
        if self.stage == "rcpt":
            return aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, self.rcpt_to)
        return aiosmtplib.SMTPDataError(reply.code, reply.message)

    def set_result(self, result: aiosmtplib.SMTPResponse, /) -> None:
        if result.code not in self.expected or self.step + 1 == len(self.commands):
            super().set_result(result)
            return
        self.step += 1
        self.connection._deadline = self.get_loop().time() + self.connection.config.timeout
        try:
            self.protocol.write(self.commands[self.step][1])
        except Exception as exc:  # the connection is closing: the sender sees why
            self.set_exception(exc)


class _Pipelined(_Envelope):
    """MAIL, RCPT and DATA in one write (RFC 2920), for a server that announces PIPELINING.

    aiosmtplib's protocol hands over one reply per data_received call, leaving any further
    complete replies in its buffer; set_result takes those from the buffer itself. It resolves
    once all three replies are in, with the first unexpected one (its stage) or DATA's 354."""

    def start(self) -> None:
        self.replies: list[aiosmtplib.SMTPResponse] = []
        self.protocol.write(b"".join(command for _, command, _ in self.commands))

    def set_result(self, result: aiosmtplib.SMTPResponse, /) -> None:
        protocol, replies = self.protocol, self.replies
        replies.append(result)
        try:
            while len(replies) < len(self.commands):
                more = protocol._read_response_from_buffer()
                if more is None:  # the rest is still on its way
                    self.connection._deadline = (
                        self.get_loop().time() + self.connection.config.timeout
                    )
                    return
                replies.append(more)
        except Exception as exc:  # a malformed reply
            self.set_exception(exc)
            return
        self._settle()

    def _settle(self) -> None:
        for step, reply in enumerate(self.replies):
            if reply.code not in self.commands[step][2]:
                self.step = step
                self.data_open = self.replies[-1].code == 354 and len(self.replies) == 3
                super(_Envelope, self).set_result(reply)
                return
        self.step = len(self.commands) - 1
        super(_Envelope, self).set_result(self.replies[-1])

    def set_exception(self, exception: BaseException | type[BaseException], /) -> None:
        # The connection broke after a refusal (a 421 closes it): report the refusal.
        if not self.done() and any(
            r.code not in self.commands[i][2] for i, r in enumerate(self.replies)
        ):
            self._settle()
        elif not self.done():
            super().set_exception(exception)


def _time_out(waiter: asyncio.Future[aiosmtplib.SMTPResponse]) -> None:
    if not waiter.done():
        exc = aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response")
        waiter.set_exception(exc)
        waiter.exception()  # retrieved: nobody may await it any more


def _dot_stuffed(data: bytes) -> bytes:
    """CRLF line ends and leading dots doubled, as aiosmtplib's data() sends a message; the
    regular expressions only run when the cheap counts say there is something to change."""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        data = normalize_message_line_endings(data)
    if data.startswith(b".") or b"\n." in data:
        data = PERIOD_REGEX.sub(b"..", data)
    return data


class _Aborted(Exception):
    pass


class _AfterDot(aiosmtplib.SMTPException):
    """The connection broke after the final dot: the server may or may not have the message."""
