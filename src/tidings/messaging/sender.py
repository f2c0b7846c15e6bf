"""The sender as every process runs it: the delivery pipeline with Tidings' parts plugged in.

`tidings serve`, `tidings worker` and `tidings mail send` all run this `Sender`, so the wiring
is written down once, here:
- the pre-dot check (predot.mark_delivering) before every final dot;
- before each pass over the due mail, the broadcasts whose time has come are queued
  (broadcasts.queue_due_broadcasts);
- a hard failure at RCPT (5.1.x) bounces the contact (bounces.hard_failures_bounce).

The sender's parts, each in a module of its own:
- options.py      SenderOptions, from the settings
- ratelimit.py    the global and per-domain rate limits
- outbox_store.py the sender's side of the outbox table: claim with a lease, take leases
                  back, record outcomes (sent, deferred with backoff, failed)
- predot.py       the pre-dot check, one statement on a kept DBAPI connection
- composer.py     rendering, tracking, unsubscribe headers and DKIM, in threads or processes
- pipeline.py     the async pipeline: claim, compose ahead, send over long-lived
                  connections, check before the dot, record
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.orm import Session

from tidings.clock import Clock
from tidings.db.engine import Database
from tidings.messaging.bounces import hard_failures_bounce
from tidings.messaging.broadcasts import queue_due_broadcasts
from tidings.messaging.options import SenderOptions
from tidings.messaging.outbox_store import OnHardFailure, Outcome, RunStats, claim
from tidings.messaging.pipeline import BeforeRun, MailConnection, Pipeline
from tidings.messaging.policy_sql import allowed_statuses
from tidings.messaging.predot import mark_delivering
from tidings.messaging.ratelimit import TokenBucket
from tidings.messaging.tracking import TokenMaker
from tidings.messaging.transport import SmtpConfig, SmtpConnection


def queue_due(session: Session, now: datetime) -> None:
    """The sender's `before_run`: queue the broadcasts whose scheduled time has come."""
    queue_due_broadcasts(session, now=now)


class Sender(Pipeline):
    """The pipeline with the pre-dot check and the hooks above; a hook given as None is off."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        options: SenderOptions,
        *,
        tokens: TokenMaker | None = None,
        before_run: BeforeRun | None = queue_due,
        on_hard_failure: OnHardFailure | None = hard_failures_bounce,
        connect: Callable[[SmtpConfig], MailConnection] = SmtpConnection,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(
            db,
            clock,
            options,
            check=mark_delivering,
            tokens=tokens,
            before_run=before_run,
            on_hard_failure=on_hard_failure,
            connect=connect,
            monotonic=monotonic,
            sleep=sleep,
        )


def run_sender(
    db: Database,
    clock: Clock,
    options: SenderOptions,
    *,
    tokens: TokenMaker | None = None,
    forever: bool = False,
) -> RunStats:
    """Blocking entry point (CLI, tests)."""

    async def main() -> RunStats:
        sender = Sender(db, clock, options, tokens=tokens)
        try:
            if forever:
                await sender.run_forever()
                return RunStats()
            return await sender.run_once()
        finally:
            await sender.close()

    return asyncio.run(main())


# Also importable from here, as before the sender was split into its parts.
__all__ = [
    "Outcome",
    "RunStats",
    "Sender",
    "SenderOptions",
    "TokenBucket",
    "allowed_statuses",
    "claim",
    "mark_delivering",
    "queue_due",
    "run_sender",
]
