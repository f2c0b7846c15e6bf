"""The async delivery pipeline: claim a batch, compose it a few chunks ahead of the
connections, and send each message over a few long-lived SMTP connections, with the pre-dot
check before each final dot; then record the outcomes.

Exactly once, step by step:
1. claim (one transaction, outbox_store.claim): due rows -> `sending`, leased to this worker
   (PostgreSQL: FOR UPDATE SKIP LOCKED, so several senders share the work; SQLite: one writer
   at a time).
2. per message, over SMTP: MAIL, RCPT, DATA (354); then ONE transaction, shared by the
   connections that reach this point together (DeliveringMarker: a group waits a couple of
   milliseconds for the messages already on their way), runs the pre-dot check (predot.py),
   which moves the row to `delivering`; right after its commit, in the same synchronous
   stretch, the body and the final dot go out in one write. The policy is thus checked per
   message at its last moment, not per batch.
3. the server's reply moves the row to `sent` / `deferred` / `failed` (batched).
A sender killed at any point leaves rows in `sending` (never handed over: sent again) or
`delivering` (handed over: counted as sent); see transport.py for the reasoning.

The pipeline knows nothing of broadcasts or bounces: what runs before each pass
(`before_run`) and what a hard failure at RCPT does (`on_hard_failure`) are given to it where
the sender is assembled (tidings.messaging.sender). A connection is anything with the
`MailConnection` shape, so a transport that sends MAIL, RCPT and DATA in one write can take
SmtpConnection's place without the pipeline changing.

Throughput: messages are composed a few chunks ahead of the connections (composer.py), the
SMTP transaction skips aiosmtplib's per-command overhead and pipelines its commands when the
server allows (transport.py), and the pre-dot statement runs on a kept DBAPI connection
(predot.py).

Destinations (destinations.py): each recipient domain named in TIDINGS_SMTP_DESTINATIONS has
connections of its own, every other domain shares the default ones; a batch's composed messages
are handed to the queue of their destination, which only its connections serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from tidings.clock import Clock
from tidings.config import DEFAULT_DESTINATION
from tidings.db.engine import Database
from tidings.messaging.composer import ComposePool
from tidings.messaging.destinations import Destination, Routes
from tidings.messaging.models import EmailTemplate
from tidings.messaging.options import SenderOptions
from tidings.messaging.outbox_store import (
    Job,
    OnHardFailure,
    Outcome,
    RunStats,
    claim,
    record_outcomes,
    release_own_leases,
)
from tidings.messaging.predot import PreDotCheck, PreDotUpdate
from tidings.messaging.ratelimit import RateLimits
from tidings.messaging.tracking import TokenMaker
from tidings.messaging.transport import BeforeDot, SmtpConfig, SmtpConnection, SmtpResult, WriteDot

# Messages are composed in chunks (eight per connection: one pool call signs a chunk), a few
# chunks ahead of the connections. Each pool call wakes a worker thread and each result wakes
# the event loop, and on a busy machine those hand-offs cost the loop's thread more than the
# composing itself: with two messages per connection they took a tenth of its time.
_CHUNK_PER_CONNECTION = 8
_CHUNKS_AHEAD = 3
log = logging.getLogger(__name__)

# Runs in a transaction of its own at the start of each pass over the due mail (the sender
# queues due broadcasts there).
BeforeRun = Callable[[Session, datetime], object]


class MailConnection(Protocol):
    """What the pipeline needs of a connection (transport.SmtpConnection is one)."""

    async def send(
        self, mail_from: str, rcpt_to: str, data: bytes, before_dot: BeforeDot
    ) -> SmtpResult: ...

    async def close(self) -> None: ...


class DeliveringMarker:
    """Groups the pre-dot checks of connections that reach the dot together: one commit.

    Right after the commit, still in the same synchronous stretch of code, it writes the final
    dot of every approved message: nothing else runs in between, so the window in which a
    killed sender leaves a `delivering` row whose dot was never written is one function call.

    A group waits (at most GROUP_WAIT seconds) for the messages already on their way to the
    dot, so that the connections fall into step and a commit covers one message per
    connection instead of one or two: the commit is the costliest step of the check.
    """

    GROUP_WAIT = 0.002

    def __init__(self, db: Database, clock: Clock, worker_id: str, check: PreDotCheck) -> None:
        self.db, self.clock, self.worker_id, self.pre_dot = db, clock, worker_id, check
        self.update = PreDotUpdate(db)
        self.pending: list[tuple[int, WriteDot, asyncio.Future[str]]] = []
        self.flushing: asyncio.Task[None] | None = None
        self.on_the_way = 0  # messages being sent that have not reached their check yet
        self.wake: asyncio.Future[None] | None = None  # resolved on an arrival

    def _wake(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    @contextlib.contextmanager
    def sending(self) -> Iterator[Callable[[], None]]:
        """Counts one message on its way to the check; call the function it gives when the
        message reaches the check (or leave the block: it did not get there)."""
        self.on_the_way += 1
        counted = [True]

        def arrived() -> None:
            if counted[0]:
                counted[0] = False
                self.on_the_way -= 1
                self._wake()

        try:
            yield arrived
        finally:
            arrived()

    async def check(self, outbox_id: int, write_dot: WriteDot) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pending.append((outbox_id, write_dot, future))
        if self.flushing is None:
            self.flushing = asyncio.create_task(self._flush())
        return await future

    async def _gather(self) -> None:
        """Until every message on its way has arrived, or GROUP_WAIT has passed."""
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self._wake()

        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.GROUP_WAIT, expire)
        try:
            while self.on_the_way > 0 and not expired:
                self.wake = loop.create_future()
                await self.wake
        finally:
            timer.cancel()
            self.wake = None

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # let the other connections join this group
            while self.pending:
                await self._gather()
                group, self.pending = self.pending, []
                try:
                    # In the loop's thread on purpose: a hop to a worker thread waits for the
                    # GIL (up to the 5 ms switch interval) while composing threads run, and
                    # this short transaction is on every message's path.
                    verdict = self.pre_dot(
                        self.db,
                        [i for i, _, _ in group],
                        now=self.clock.now(),
                        worker_id=self.worker_id,
                        update=self.update,
                    )
                except Exception as exc:  # the database is away: nothing goes out
                    for _, _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for outbox_id, write_dot, future in group:
                    result = verdict[outbox_id]
                    if result == "ok":
                        try:
                            write_dot()
                        except Exception as exc:  # connection gone: the reply read reports it
                            log.debug("final dot not written: %s", exc)
                    if not future.done():
                        future.set_result(result)
        finally:
            self.flushing = None


# A destination's composed messages, for its connections; None: stop.
_Ready = asyncio.Queue[tuple[Job, bytes | str] | None]


async def _hand_over(
    jobs: Sequence[Job],
    composing: asyncio.Future[list[bytes | str]],
    ready: Callable[[Job, bytes | str], None],
) -> None:
    for job, data in zip(jobs, await composing, strict=True):
        ready(job, data)


class Pipeline:
    """The delivery pipeline, with its parts given: the pre-dot check and the two hooks."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        options: SenderOptions,
        *,
        check: PreDotCheck,
        tokens: TokenMaker | None = None,
        before_run: BeforeRun | None = None,
        on_hard_failure: OnHardFailure | None = None,
        connect: Callable[[SmtpConfig], MailConnection] = SmtpConnection,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.db, self.clock, self.options = db, clock, options
        self.before_run, self.on_hard_failure = before_run, on_hard_failure
        self.composing = ComposePool(options, tokens)
        default = Destination(
            DEFAULT_DESTINATION, options.connections, options.smtp.messages_per_connection
        )
        self.routes = Routes(default, options.destinations)
        # Each destination's connections (they connect on their first message).
        self.pools = {
            d.name: [
                connect(replace(options.smtp, messages_per_connection=d.messages_per_connection))
                for _ in range(d.connections)
            ]
            for d in self.routes.destinations
        }
        self.connections = [c for pool in self.pools.values() for c in pool]
        self.marker = DeliveringMarker(db, clock, options.worker_id, check)
        # Injectable time and sleep, so tests of the limits never sleep.
        self.limits = RateLimits(
            options.rate_per_second,
            options.domain_rate_per_second,
            monotonic=monotonic,
            sleep=sleep,
        )
        self.started = False

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.connections))
        self.composing.close()
        self.marker.update.close()

    async def run_once(self) -> RunStats:
        """Send everything that is due now, then return."""
        total = RunStats()
        if not self.started:
            total.recovered += await asyncio.to_thread(
                release_own_leases, self.db, self.options.worker_id, self.clock.now()
            )
            self.started = True
        if self.before_run is not None:
            await asyncio.to_thread(self._before_run, self.before_run)
        while True:
            stats, claimed = await self.run_batch()
            total.add(stats)
            if not claimed:
                return total

    def _before_run(self, hook: BeforeRun) -> None:
        with self.db.session() as session:
            hook(session, self.clock.now())

    async def run_forever(
        self, poll_seconds: float = 1.0, stop: asyncio.Event | None = None
    ) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # the database or a bug: leased rows are retried after the lease
                log.exception("sending failed; retrying in %s s", poll_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_seconds)

    async def run_batch(self) -> tuple[RunStats, int]:
        now = self.clock.now()
        jobs, templates, stats = await asyncio.to_thread(
            claim,
            self.db,
            now=now,
            worker_id=self.options.worker_id,
            limit=self.options.batch_size,
            lease=self.options.lease,
        )
        claimed = len(jobs) + stats.refused
        if not jobs:
            return stats, claimed
        # One queue per destination that has mail in this batch, served by its connections.
        queues: dict[str, _Ready] = {}
        for name in {self.routes.of(job.email).name for job in jobs}:
            queues[name] = asyncio.Queue()
        pools = {name: self.pools[name] for name in queues}
        workers = sum(len(pool) for pool in pools.values())
        room = asyncio.Semaphore(_CHUNKS_AHEAD * _CHUNK_PER_CONNECTION * workers)
        outcomes: list[Outcome] = []

        def ready(job: Job, data: bytes | str) -> None:
            queues[self.routes.of(job.email).name].put_nowait((job, data))

        def stop() -> None:  # one stop sign per connection
            for name, pool in pools.items():
                for _ in pool:
                    queues[name].put_nowait(None)

        producer = asyncio.create_task(self._produce(jobs, templates, ready, stop, room, workers))
        try:
            await asyncio.gather(
                *(
                    self._worker(connection, queues[name], room, outcomes, stats)
                    for name, pool in pools.items()
                    for connection in pool
                )
            )
            await producer  # its failure, if any
        finally:
            producer.cancel()
        recorded = await asyncio.to_thread(
            record_outcomes,
            self.db,
            outcomes,
            now=self.clock.now(),
            max_attempts=self.options.max_attempts,
            retry_base=self.options.retry_base,
            on_hard_failure=self.on_hard_failure,
        )
        stats.add(recorded)
        return stats, claimed

    async def _produce(
        self,
        jobs: Sequence[Job],
        templates: dict[int, EmailTemplate],
        ready: Callable[[Job, bytes | str], None],
        stop: Callable[[], None],
        room: asyncio.Semaphore,
        workers: int,
    ) -> None:
        """Composes the batch a chunk at a time, a few chunks ahead of the connections, so a
        connection never waits for its next message (and the DKIM time stays current)."""
        size = _CHUNK_PER_CONNECTION * max(1, workers)
        in_flight: list[tuple[Sequence[Job], asyncio.Future[list[bytes | str]]]] = []
        try:
            for start in range(0, len(jobs), size):
                chunk = jobs[start : start + size]
                for _ in chunk:
                    await room.acquire()
                composing = await self.composing.chunk(chunk, templates, self.clock.now())
                in_flight.append((chunk, composing))
                if len(in_flight) >= _CHUNKS_AHEAD:
                    await _hand_over(*in_flight.pop(0), ready)
            while in_flight:
                await _hand_over(*in_flight.pop(0), ready)
        finally:
            for _, composing in in_flight:
                composing.cancel()
            stop()

    async def _worker(
        self,
        connection: MailConnection,
        ready: _Ready,
        room: asyncio.Semaphore,
        outcomes: list[Outcome],
        stats: RunStats,
    ) -> None:
        while True:
            item = await ready.get()
            if item is None:
                return
            room.release()
            job, data = item
            if isinstance(data, str):
                outcomes.append(
                    Outcome(job, SmtpResult(False, 554, f"cannot render: {data}", "render"))
                )
                continue
            await self.limits.wait(job.email)
            verdicts: list[str] = []

            with self.marker.sending() as arrived:

                async def before_dot(
                    write_dot: WriteDot, job: Job = job, verdicts: list[str] = verdicts
                ) -> bool:
                    arrived()
                    verdict = await self.marker.check(job.id, write_dot)
                    verdicts.append(verdict)
                    return verdict == "ok"

                result = await connection.send(
                    self.composing.composer.return_path(job), job.email, data, before_dot
                )
            if verdicts and verdicts[0] != "ok":
                # Lease lost to another sender, or refused at the last check (recorded there).
                if verdicts[0] == "refused":
                    stats.refused += 1
                else:
                    stats.aborted += 1
                continue
            outcomes.append(Outcome(job, result))
