"""PIPELINING (RFC 2920): MAIL, RCPT and DATA in one write when the server announces it, every
reply checked, the pre-dot check unchanged; the commands one by one when it does not. Against a
real aiosmtpd made to announce PIPELINING and against our own sink (tests/messaging/latency_sink.py),
which shows how the commands arrived."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from tests.messaging.conftest import Sink, sender_options
from tests.messaging.latency_sink import SinkState, serve
from tests.messaging.test_sender import queue, run, statuses
from tidings.clock import FakeClock
from tidings.contacts.models import Contact
from tidings.db.engine import Database
from tidings.messaging.sender import RunStats, Sender
from tidings.messaging.transport import SmtpConfig


def run_with_sink(
    database: Database,
    clock: FakeClock,
    state: SinkState,
    smtp: dict[str, Any] | None = None,
    **options: Any,
) -> RunStats:
    """One pass of the sender against the latency sink, both in this event loop; `smtp`
    changes the SmtpConfig."""

    async def main() -> RunStats:
        server = await serve(state)
        port = server.sockets[0].getsockname()[1]
        config = replace(SmtpConfig("127.0.0.1", port, timeout=5), **(smtp or {}))
        sender = Sender(database, clock, sender_options(port, smtp=config, **options))
        try:
            return await sender.run_once()
        finally:
            await sender.close()
            server.close()

    return asyncio.run(main())


def envelopes(state: SinkState) -> list[list[str]]:
    return [read for read in state.reads if "MAIL" in read or "RCPT" in read]


def test_mail_rcpt_and_data_go_in_one_write_when_pipelining_is_announced(
    database: Database, clock: FakeClock
) -> None:
    emails = [f"p{i}@example.org" for i in range(6)]
    queue(database, clock, emails)
    state = SinkState()
    stats = run_with_sink(database, clock, state, connections=2)
    assert stats.sent == 6
    assert envelopes(state) == [["MAIL", "RCPT", "DATA"]] * 6
    assert sorted(to for _, to, _ in state.delivered) == sorted(emails)
    assert set(statuses(database).values()) == {"sent"}


def test_without_pipelining_the_commands_go_one_by_one(
    database: Database, clock: FakeClock
) -> None:
    queue(database, clock, ["a@example.org"])
    state = SinkState(pipelining=False)
    assert run_with_sink(database, clock, state, connections=1).sent == 1
    assert envelopes(state) == [["MAIL"], ["RCPT"]]
    assert [to for _, to, _ in state.delivered] == ["a@example.org"]


def test_pipelining_can_be_switched_off_although_announced(
    database: Database, clock: FakeClock
) -> None:
    queue(database, clock, ["a@example.org"])
    state = SinkState()
    assert run_with_sink(database, clock, state, {"pipelining": False}, connections=1).sent == 1
    assert envelopes(state) == [["MAIL"], ["RCPT"]]


def contact_status(database: Database, email: str) -> str:
    with database.session() as session:
        return session.scalars(select(Contact.status).where(Contact.email == email)).one()


def test_a_refused_rcpt_in_a_pipelined_batch_fails_that_message_only(
    database: Database, clock: FakeClock
) -> None:
    emails = ["a@example.org", "gone@example.org", "later@example.org", "b@example.org"]
    queue(database, clock, emails)
    state = SinkState(
        refuse_rcpt={
            "gone@example.org": b"550 5.1.1 no such user",
            "later@example.org": b"450 4.2.1 try again later",
        }
    )
    stats = run_with_sink(database, clock, state, connections=1)
    assert (stats.sent, stats.failed, stats.deferred) == (2, 1, 1)
    assert sorted(to for _, to, _ in state.delivered) == ["a@example.org", "b@example.org"]
    assert state.connections == 1  # the refusals reset the transaction, not the connection
    assert statuses(database) == {
        "a@example.org": "sent",
        "gone@example.org": "bounced",
        "later@example.org": "deferred",
        "b@example.org": "sent",
    }
    assert contact_status(database, "gone@example.org") == "bounced"  # a hard 5.1.1, as before
    assert contact_status(database, "later@example.org") == "subscribed"


def test_against_aiosmtpd_announcing_pipelining(
    database: Database, clock: FakeClock, sink: Sink
) -> None:
    """A real aiosmtpd reads the pipelined commands; a refused RCPT makes it refuse the DATA
    with 503, which is read and passed over; the other messages go on the same connection."""
    sink.handler.pipelining = True
    sink.handler.rcpt_replies["gone@example.org"] = ["550 5.1.1 no such user"]
    emails = ["a@example.org", "gone@example.org", "b@example.org", "c@example.org"]
    queue(database, clock, emails)
    options = sender_options(sink.port, connections=1)
    options.smtp = replace(options.smtp, helo="mta.example.com")
    stats = run(database, clock, options)
    assert (stats.sent, stats.failed) == (3, 1)
    assert sink.handler.count_by_recipient() == dict.fromkeys(
        ["a@example.org", "b@example.org", "c@example.org"], 1
    )
    assert sink.handler.helo_names == ["mta.example.com"]
    assert contact_status(database, "gone@example.org") == "bounced"


def test_a_connection_dropped_before_the_dot_sends_nothing_then_exactly_once(
    database: Database, clock: FakeClock
) -> None:
    """The server accepts the pipelined DATA (354) and the connection breaks before the final
    dot: the pre-dot check ran, but the message never arrived; it is retried and arrives once,
    and the other messages go on over a new connection."""
    emails = ["a@example.org", "drop@example.org", "b@example.org"]
    queue(database, clock, emails)
    state = SinkState(drop_after_354={"drop@example.org"})
    first = run_with_sink(database, clock, state, connections=1)
    assert (first.sent, first.deferred) == (2, 1)
    assert statuses(database)["drop@example.org"] == "deferred"
    clock.advance(hours=1)
    again = run_with_sink(database, clock, state, connections=1)
    assert again.sent == 1
    counts: dict[str, int] = {}
    for _, to, _ in state.delivered:
        counts[to] = counts.get(to, 0) + 1
    assert counts == dict.fromkeys(emails, 1)
    assert set(statuses(database).values()) == {"sent"}


def test_an_accepted_data_after_a_refused_rcpt_is_never_ended_with_a_dot(
    database: Database, clock: FakeClock
) -> None:
    """A server that (wrongly) answers the pipelined DATA with 354 although it refused the only
    recipient: the connection is dropped rather than a dot written, and the next message goes
    over a new one."""
    queue(database, clock, ["gone@example.org", "a@example.org"])
    state = SinkState(refuse_rcpt={"gone@example.org": b"550 5.1.1 no such user"})
    state.accept_data_without_rcpt = True
    stats = run_with_sink(database, clock, state, connections=1)
    assert (stats.sent, stats.failed) == (1, 1)
    assert [to for _, to, _ in state.delivered] == ["a@example.org"]
    assert state.empty_messages == 0 and state.connections == 2
