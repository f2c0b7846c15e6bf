"""The SMTP session's settings: the EHLO name, messages per connection, and the limits per
destination domain."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.messaging.conftest import Sink
from tests.messaging.latency_sink import SinkState
from tests.messaging.test_pipelining import run_with_sink
from tests.messaging.test_sender import queue, run
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.messaging.options import SenderOptions, default_helo


def test_default_helo_is_the_fqdn_or_else_the_from_domain() -> None:
    assert default_helo("example.com", fqdn="mta1.example.net") == "mta1.example.net"
    assert default_helo("example.com", fqdn="MTA1.Example.NET.") == "mta1.example.net"
    for unqualified in ("localhost", "vm", "localhost.localdomain", "box.localdomain", "pc.local"):
        assert default_helo("Example.com", fqdn=unqualified) == "example.com", unqualified


def test_helo_comes_from_the_settings(settings: Settings, database: Database) -> None:
    base = settings.model_copy(
        update={"smtp_url": "smtp://127.0.0.1:25", "mail_from": "Shop <news@shop.example>"}
    )
    chosen = base.model_copy(update={"smtp_helo": "out.shop.example"})
    assert SenderOptions.from_settings(chosen, database).smtp.helo == "out.shop.example"
    assert SenderOptions.from_settings(base, database).smtp.helo == default_helo("shop.example")
    for bad in ("two words", "x\r\nRSET", "-x.example", ""):
        with pytest.raises(ValidationError, match="smtp_helo"):
            Settings(smtp_helo=bad)


def test_ehlo_says_the_configured_name(database: Database, clock: FakeClock, sink: Sink) -> None:
    queue(database, clock, ["a@example.org"])
    options = SenderOptions.from_settings(
        Settings(
            smtp_url=sink.url,
            smtp_helo="mta.shop.example",
            secret_key="k",
            database_url="sqlite://",
        ),
        database,
        connections=1,
        worker_id="test-worker",
    )
    assert run(database, clock, options).sent == 1
    assert sink.handler.helo_names == ["mta.shop.example"]


def test_a_connection_is_renewed_after_its_messages(database: Database, clock: FakeClock) -> None:
    queue(database, clock, [f"p{i}@example.org" for i in range(5)])
    state = SinkState()
    stats = run_with_sink(database, clock, state, {"messages_per_connection": 2}, connections=1)
    assert stats.sent == 5
    assert state.connections == 3  # 2 + 2 + 1
    assert state.reads.count(["QUIT"]) >= 2  # the full ones were closed politely
