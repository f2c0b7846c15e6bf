"""A small SMTP server of our own on loopback, for what aiosmtpd cannot do: answer every
command a fixed time after it arrived (a round trip over the internet), announce PIPELINING,
show how the commands arrived (which came in one read), refuse chosen recipients, drop the
connection after DATA's 354. The pipelining tests use it, and bench/send.py's latency mode runs
it in a process of its own.

A reply is due `delay` seconds after its command arrived, whatever else is waiting: three
pipelined commands are answered together after one delay, as over a network, while the same
commands sent one after the other cost a delay each.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class SinkState:
    delay: float = 0.0
    pipelining: bool = True
    # RCPT address -> the reply to give instead of 250 (e.g. b"550 5.1.1 no such user").
    refuse_rcpt: dict[str, bytes] = field(default_factory=dict)
    # Close the connection right after DATA's 354 for these recipients (once each).
    drop_after_354: set[str] = field(default_factory=set)
    helo_names: list[str] = field(default_factory=list)
    reads: list[list[str]] = field(default_factory=list)  # the verbs of each read
    delivered: list[tuple[str, str, bytes]] = field(default_factory=list)  # from, to, data
    connections: int = 0
    sessions: list[list[str]] = field(default_factory=list)  # per connection: its recipients
    # Answer DATA with 354 even with no accepted recipient (which RFC 2920 says not to do).
    accept_data_without_rcpt: bool = False
    empty_messages: int = 0  # messages ended with no recipient
    keep: bool = True  # keep the commands and messages (off in the bench: it only counts)
    count: int = 0
    on_message: Callable[[], None] | None = None


class _Session(asyncio.Protocol):
    def __init__(self, state: SinkState) -> None:
        self.state = state
        self.buffer = bytearray()
        self.in_data = False
        self.mail_from, self.rcpts = "", list[str]()
        self.outgoing: collections.deque[tuple[float, bytes]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.state.connections += 1
        self.carried: list[str] = []
        if self.state.keep:
            self.state.sessions.append(self.carried)
        self.reply(b"220 latency sink ready")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def reply(self, line: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.outgoing.append((loop.time() + self.state.delay, line + b"\r\n"))
        if self.timer is None:
            self._flush()

    def _flush(self) -> None:
        self.timer = None
        loop = asyncio.get_running_loop()
        now, out = loop.time(), bytearray()
        while self.outgoing and self.outgoing[0][0] <= now:
            out += self.outgoing.popleft()[1]
        if out and self.transport is not None:
            self.transport.write(bytes(out))
        if self.outgoing:
            self.timer = loop.call_at(self.outgoing[0][0], self._flush)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        verbs: list[str] = []
        while self.transport is not None:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    break
                body = bytes(self.buffer[: end + 2])
                del self.buffer[: end + 5]
                self.in_data = False
                verbs.append("<dot>")
                self._message(body)
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 2]
            verbs.append(line[:4].decode("ascii", "replace").upper())
            self._command(line)
        if self.state.keep and verbs:
            self.state.reads.append(verbs)

    def _message(self, body: bytes) -> None:
        state = self.state
        state.count += 1
        state.empty_messages += not self.rcpts
        if state.keep:
            self.carried.extend(self.rcpts)
            for rcpt in self.rcpts:
                state.delivered.append((self.mail_from, rcpt, body.replace(b"\r\n..", b"\r\n.")))
        self.mail_from, self.rcpts = "", []
        self.reply(b"250 2.0.0 queued")
        if state.on_message is not None:
            state.on_message()

    def _command(self, line: bytes) -> None:
        verb, _, argument = line.decode("utf-8", "replace").partition(" ")
        verb = verb.upper()
        if verb in ("EHLO", "HELO"):
            self.state.helo_names.append(argument)
            extensions = b"250-PIPELINING\r\n" if self.state.pipelining else b""
            self.reply(b"250-latency sink\r\n" + extensions + b"250 8BITMIME")
        elif verb == "MAIL":
            self.mail_from, self.rcpts = _address(argument), []
            self.reply(b"250 2.1.0 ok")
        elif verb == "RCPT":
            address = _address(argument)
            refusal = self.state.refuse_rcpt.get(address)
            if refusal is not None:
                self.reply(refusal)
            else:
                self.rcpts.append(address)
                self.reply(b"250 2.1.5 ok")
        elif verb == "DATA":
            if not self.rcpts and not self.state.accept_data_without_rcpt:
                self.reply(b"554 5.5.1 no valid recipients")
            elif self.rcpts and self.rcpts[0] in self.state.drop_after_354:
                self.state.drop_after_354.discard(self.rcpts[0])
                self.reply(b"354 go ahead")
                self._flush_now_and_close()
            else:
                self.in_data = True
                self.reply(b"354 go ahead")
        elif verb == "RSET":
            self.mail_from, self.rcpts = "", []
            self.reply(b"250 ok")
        elif verb == "QUIT":
            self.reply(b"221 bye")
            self._flush_now_and_close()
        else:
            self.reply(b"502 5.5.2 not implemented")

    def _flush_now_and_close(self) -> None:
        if self.transport is not None:
            self.transport.write(b"".join(line for _, line in self.outgoing))
            self.outgoing.clear()
            self.transport.close()


def _address(argument: str) -> str:
    start, end = argument.find("<"), argument.find(">")
    return argument[start + 1 : end] if 0 <= start < end else ""


async def serve(state: SinkState, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """The sink, listening; its port is `server.sockets[0].getsockname()[1]`."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Session(state), host, port)
