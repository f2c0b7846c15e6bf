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
from tidings.messaging.destinations import Destination, Routes
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


def test_routes_by_recipient_domain_and_its_subdomains() -> None:
    default = Destination("*", 4, 1000)
    gmail = Destination("gmail.com,googlemail.com", 8, 100)
    routes = Routes(default, [gmail])
    assert routes.of("a@gmail.com") is gmail and routes.of("a@GoogleMail.COM") is gmail
    assert routes.of("a@eu.gmail.com") is gmail
    assert routes.of("a@notgmail.com") is default and routes.of("a@gmail.com.evil.org") is default
    assert routes.destinations == [default, gmail]


def test_destinations_from_the_settings(settings: Settings, database: Database) -> None:
    raw = (
        '{"gmail.com, googlemail.com": {"connections": 8, "messages_per_connection": 100},'
        ' "outlook.com": {"connections": 2},'
        ' " * ": {"connections": 16, "messages_per_connection": 0}}'
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TIDINGS_SMTP_DESTINATIONS", raw)
        env.setenv("TIDINGS_SMTP_MESSAGES_PER_CONNECTION", "500")
        loaded = Settings(smtp_url="smtp://127.0.0.1:25", secret_key="k")
    options = SenderOptions.from_settings(loaded, database)
    assert options.destinations == (
        Destination("gmail.com,googlemail.com", 8, 100),
        Destination("outlook.com", 2, 500),
    )
    assert (options.connections, options.smtp.messages_per_connection) == (16, 0)


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        ({"gmail.com": {"connections": 0}}, "connections"),
        ({"gmail.com": {"connections": 2, "messages": 5}}, "messages"),
        ({"gmail com": {"connections": 2}}, "'gmail com' is not a domain name"),
        (
            {"a.com": {"connections": 2}, "b.com,A.com": {"connections": 1}},
            "'a.com' is named twice",
        ),
        ({"*,a.com": {"connections": 2}}, "'\\*' stands alone"),
    ],
)
def test_bad_destinations_are_refused_by_name(entries: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match="smtp_destinations") as refused:
        Settings(smtp_destinations=entries)
    assert refused.match(says)


def test_a_destination_has_its_own_connections(database: Database, clock: FakeClock) -> None:
    """Mail for slow.example goes over its one connection, two messages at a time; the rest
    shares the default connections, which never carry slow.example's."""
    slow = [f"s{i}@slow.example" for i in range(5)]
    other = [f"o{i}@example.org" for i in range(6)]
    queue(database, clock, slow + other)
    state = SinkState()
    stats = run_with_sink(
        database,
        clock,
        state,
        connections=2,
        destinations=(Destination("slow.example", 1, 2),),
    )
    assert stats.sent == 11
    carried_slow = [s for s in state.sessions if any(r.endswith("@slow.example") for r in s)]
    assert all(r.endswith("@slow.example") for s in carried_slow for r in s)
    assert sorted(len(s) for s in carried_slow) == [1, 2, 2]  # one connection, renewed
    carried_other = [s for s in state.sessions if s and s not in carried_slow]
    assert 1 <= len(carried_other) <= 2 and sum(map(len, carried_other)) == 6
