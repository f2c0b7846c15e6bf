"""One webhook pass for the worker: dispatch new activities into deliveries, then send what
is due (`tidings worker` and `tidings serve` run it after each engine pass)."""

from __future__ import annotations

from tidings.clock import Clock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.webhooks.deliver import deliver_due
from tidings.webhooks.dispatch import dispatch

MAX_ROUNDS = 100  # a pass yields to the engine again after this many batches


def run_webhooks(database: Database, clock: Clock, settings: Settings) -> int:
    """Dispatch and deliver until nothing is left (or MAX_ROUNDS); returns deliveries tried."""
    for _ in range(MAX_ROUNDS):
        with database.session() as session:
            if not dispatch(session, clock.now()):
                break
    attempted = 0
    for _ in range(MAX_ROUNDS):
        sent = deliver_due(database, clock, settings)
        if not sent:
            break
        attempted += sent
    return attempted
