"""Issue 5: a 20,000-recipient broadcast to an aiosmtpd sink on loopback, DKIM signing on.
Issue 14, latency mode: the same broadcast to a sink of our own that announces PIPELINING and
answers every command 25 ms after it arrived (a round trip over the internet), over 32
connections; its baseline is the latency limit, connections / (2 round trips x 25 ms) = 640
msg/s, as a pipelined message costs two round trips (MAIL+RCPT+DATA, then body and dot).
BENCH_SEND_LATENCY_MESSAGES, _CONNECTIONS and _MS change its size; BENCH_SEND_PHASES=latency
(or loopback) runs one mode only.

Baseline, measured in the same run: the sink's own maximum rate, reached by a bare aiosmtplib
loop sending pre-built messages over the same number of connections. The sink runs in its own
process for both, so the sender's CPU is not shared with it.

Each phase also prints the CPU time per message of the client side (the bare loop, or the sender
with its compose threads or processes) and of the sink, and how busy that kept the machine's
cores: on a machine where sink and sender share few cores, these say how far the ratio can go.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.messaging helpers

import aiosmtplib
from _common import cpu_seconds, free_port, fresh_sqlite, report, scale, timed

from tidings.clock import SystemClock
from tidings.contacts.models import MailingList
from tidings.db.bulk import bulk_insert
from tidings.db.engine import create_database
from tidings.db.migrate import upgrade
from tidings.events.tokens import TrackingTokens
from tidings.messaging.broadcasts import create_broadcast, queue_broadcast
from tidings.messaging.dkim import DkimSigner, generate_key
from tidings.messaging.sender import Sender, SenderOptions
from tidings.messaging.service import create_template
from tidings.messaging.transport import SmtpConfig

RECIPIENTS = max(500, int(20_000 * scale()))
CONNECTIONS = 4
# BENCH_SEND_PROCESSES=0 runs only the thread variant (compose_processes values, comma-separated)
PROCESSES = [int(p) for p in os.environ.get("BENCH_SEND_PROCESSES", "0,2").split(",")]
PHASES = os.environ.get("BENCH_SEND_PHASES", "loopback,latency").split(",")
LATENCY_MESSAGES = max(
    500, int(int(os.environ.get("BENCH_SEND_LATENCY_MESSAGES", "20000")) * scale())
)
LATENCY_CONNECTIONS = int(os.environ.get("BENCH_SEND_LATENCY_CONNECTIONS", "32"))
LATENCY = float(os.environ.get("BENCH_SEND_LATENCY_MS", "25")) / 1000


def _sink(port: int, counter: Any, ready: Any) -> None:
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with counter.get_lock():
                counter.value += 1
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    asyncio.run(asyncio.Event().wait())


def _latency_sink(port: int, delay: float, counter: Any, ready: Any) -> None:
    from tests.messaging.latency_sink import SinkState, serve

    def count() -> None:
        with counter.get_lock():
            counter.value += 1

    async def main() -> None:
        await serve(SinkState(delay=delay, keep=False, on_message=count), port=port)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def _helpers_cpu(sink_pid: int) -> float:
    """CPU of this process's children but the sink: the compose processes, while they live."""
    return sum(
        cpu_seconds(p.pid)
        for p in multiprocessing.active_children()
        if p.pid not in (None, sink_pid)
    )


def _report_cpu(
    who: str, client: float, sink: float, wall: float, messages: int = RECIPIENTS
) -> None:
    busy = (client + sink) / (wall * (os.cpu_count() or 1))
    print(
        f"  CPU per message: {who} {client / messages * 1e6:,.0f} µs, "
        f"sink {sink / messages * 1e6:,.0f} µs; {os.cpu_count()} cores {busy:.0%} busy",
        flush=True,
    )


def _message(i: int, signer: DkimSigner) -> bytes:
    body = (
        f"From: Shop <news@example.com>\r\nTo: user{i}@example.org\r\nSubject: Hello\r\n"
        f"Message-ID: <{i}@example.com>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n" + "Hello there\r\n" * 20
    ).encode()
    return signer.sign(body, timestamp=0)


async def _bare_loop(port: int, messages: list[bytes]) -> None:
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for i, m in enumerate(messages):
        queue.put_nowait((i, m))

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        while not queue.empty():
            i, message = queue.get_nowait()
            await client.sendmail("bounce@example.com", [f"user{i}@example.org"], message)
        await client.quit()

    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))


def _prepare(path: Path, recipients: int = RECIPIENTS) -> tuple[Any, int]:
    database = create_database(f"sqlite:///{path}")
    upgrade(database)
    now = datetime.now(UTC)
    with database.session() as session:
        template = create_template(
            session,
            name="news",
            subject="News for {{ contact.first_name | default('you') }}",
            html='<p>Hi {{ contact.first_name | default("there") }},</p>'
            '<p><a href="https://shop.example.com/sale">Our sale</a></p>'
            '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
            text=None,
            variables={},
            track_opens=True,
            track_clicks=True,
            now=now,
        )
        mailing_list = MailingList(name="All", double_opt_in=False, created_at=now)
        session.add(mailing_list)
        session.flush()
        from tidings.contacts.models import Contact, ListMembership

        bulk_insert(
            session,
            Contact.__table__,  # type: ignore[arg-type]
            [
                {
                    "email": f"user{i}@example{i % 50}.org",
                    "first_name": f"User{i}",
                    "status": "subscribed",
                    "score": 0,
                    "fields": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(recipients)
            ],
        )
        bulk_insert(
            session,
            ListMembership.__table__,  # type: ignore[arg-type]
            [
                {
                    "contact_id": i + 1,
                    "list_id": mailing_list.id,
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(recipients)
            ],
        )
        broadcast = create_broadcast(
            session,
            name="Bench",
            template_id=template.id,
            list_id=mailing_list.id,
            segment=None,
            scheduled_at=None,
            now=now,
        )
        with timed() as took:
            queue_broadcast(session, broadcast, now=now)
    report(f"queue a {recipients:,}-recipient broadcast (INSERT ... SELECT)", took[0], "s")
    return database, broadcast.id


def _run_broadcast(
    port: int, counter: Any, signer: DkimSigner, baseline: float, processes: int, sink_pid: int
) -> None:
    database, _ = _prepare(fresh_sqlite(f"send{processes}.db"))
    options = SenderOptions(
        mail_from="Shop <news@example.com>",
        base_url="https://mail.example.com",
        secret="bench-secret",
        smtp=SmtpConfig("127.0.0.1", port, timeout=30),
        bounce_domain="bounces.example.com",
        unsubscribe_mailto="unsubscribe@example.com",
        dkim=signer,
        connections=CONNECTIONS,
        batch_size=1000,
        worker_id="bench",
        compose_processes=processes,
    )
    clock = SystemClock()
    before = counter.value
    helpers = [0.0]

    async def send() -> Any:
        sender = Sender(
            database, clock, options, tokens=TrackingTokens("bench-secret", clock=clock)
        )
        try:
            return await sender.run_once()
        finally:
            helpers[0] = _helpers_cpu(sink_pid)  # before close() ends the compose processes
            await sender.close()

    own, sink = _own_cpu(), cpu_seconds(sink_pid)
    with timed() as took:
        stats = asyncio.run(send())
    own, sink = _own_cpu() - own + helpers[0], cpu_seconds(sink_pid) - sink
    assert stats.sent == RECIPIENTS, stats
    assert counter.value - before == RECIPIENTS, counter.value
    how = f"{processes} compose processes" if processes else "compose threads"
    report(
        f"broadcast of {RECIPIENTS:,} via the outbox, DKIM 2048, {how}",
        RECIPIENTS / took[0],
        "msg/s",
        baseline,
        "ratio >= 0.7",
    )
    _report_cpu("sender", own, sink, took[0])
    database.dispose()


def _run_latency(signer: DkimSigner, pipelining: bool, messages: int) -> None:
    """The broadcast to the latency sink (in its own process), with or without PIPELINING."""
    context = multiprocessing.get_context("spawn")
    counter, ready, port = context.Value("l", 0), context.Event(), free_port()
    sink_process = context.Process(
        target=_latency_sink, args=(port, LATENCY, counter, ready), daemon=True
    )
    sink_process.start()
    ready.wait(30)
    round_trips = 2 if pipelining else 4
    limit = LATENCY_CONNECTIONS / (round_trips * LATENCY)
    try:
        database, _ = _prepare(fresh_sqlite(f"latency{int(pipelining)}.db"), messages)
        options = SenderOptions(
            mail_from="Shop <news@example.com>",
            base_url="https://mail.example.com",
            secret="bench-secret",
            smtp=SmtpConfig("127.0.0.1", port, timeout=30, pipelining=pipelining),
            bounce_domain="bounces.example.com",
            unsubscribe_mailto="unsubscribe@example.com",
            dkim=signer,
            connections=LATENCY_CONNECTIONS,
            batch_size=2000,
            worker_id="bench",
        )
        clock = SystemClock()

        async def send() -> Any:
            sender = Sender(
                database, clock, options, tokens=TrackingTokens("bench-secret", clock=clock)
            )
            try:
                return await sender.run_once()
            finally:
                await sender.close()

        own, sink = _own_cpu(), cpu_seconds(sink_process.pid or 0)
        with timed() as took:
            stats = asyncio.run(send())
        own, sink = _own_cpu() - own, cpu_seconds(sink_process.pid or 0) - sink
        assert stats.sent == messages, stats
        assert counter.value == messages, counter.value
        how = "PIPELINING" if pipelining else "no PIPELINING"
        report(
            f"  limit: {LATENCY_CONNECTIONS} connections / ({round_trips} x {LATENCY * 1000:g} ms)",
            limit,
            "msg/s",
        )
        report(
            f"broadcast of {messages:,}, {LATENCY * 1000:g} ms per reply, {how}",
            messages / took[0],
            "msg/s",
            limit,
            "ratio >= 0.7" if pipelining else "",
        )
        _report_cpu("sender", own, sink, took[0], messages)
        # The sender is latency-bound here, so a machine busy with other work slows it down
        # by delaying its wake-ups: the load says how busy the machine was.
        print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        database.dispose()
    finally:
        sink_process.terminate()


def main() -> None:
    if "loopback" in PHASES:
        _loopback()
    if "latency" in PHASES:
        signer = DkimSigner.from_pem("example.com", "bench", generate_key(2048))
        _run_latency(signer, pipelining=True, messages=LATENCY_MESSAGES)
        # Without PIPELINING: four round trips each; a quarter of the messages tells the rate.
        _run_latency(signer, pipelining=False, messages=max(500, LATENCY_MESSAGES // 4))


def _loopback() -> None:
    context = multiprocessing.get_context("spawn")
    counter = context.Value("l", 0)
    ready = context.Event()
    port = free_port()
    sink_process = context.Process(target=_sink, args=(port, counter, ready), daemon=True)
    sink_process.start()
    ready.wait(30)
    signer = DkimSigner.from_pem("example.com", "bench", generate_key(2048))
    try:
        with timed() as took:
            messages = [_message(i, signer) for i in range(RECIPIENTS)]
        report(
            "build and DKIM-sign a bare message (RSA 2048), each", took[0] / RECIPIENTS * 1e6, "µs"
        )
        own, sink = _own_cpu(), cpu_seconds(sink_pid := sink_process.pid or 0)
        with timed() as bare:
            asyncio.run(_bare_loop(port, messages))
        own, sink = _own_cpu() - own, cpu_seconds(sink_pid) - sink
        baseline = RECIPIENTS / bare[0]
        report(
            f"bare aiosmtplib loop, pre-built messages, {CONNECTIONS} connections",
            baseline,
            "msg/s",
        )
        _report_cpu("client", own, sink, bare[0])
        for processes in PROCESSES:
            _run_broadcast(port, counter, signer, baseline, processes, sink_pid)
    finally:
        sink_process.terminate()


if __name__ == "__main__":
    main()
