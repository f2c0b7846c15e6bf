"""The time budget of a request: a deadline every statement run on its behalf must meet.

The API sets it for the duration of a request (`time_budget`); the engine's begin hook hands
the time left to the database (SQLite's progress handler, PostgreSQL's statement_timeout),
and no statement starts once it has passed. Work outside a request (worker, sender, CLI) has
no deadline. The deadline is a context variable: the request's threads inherit it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from tidings.errors import TidingsError

# (deadline on the monotonic clock, the budget in seconds) of the current request
_budget: ContextVar[tuple[float, float] | None] = ContextVar("tidings_budget", default=None)


class TimeBudgetExceeded(TidingsError):
    status = 503
    title = "Request took too long"


def exceeded() -> TimeBudgetExceeded:
    """The error of a request stopped at its deadline (naming the budget and its setting)."""
    current = _budget.get()
    seconds = f" of {current[1]:g} s" if current else ""
    return TimeBudgetExceeded(
        f"the request ran longer than its time budget{seconds} and was stopped "
        "(TIDINGS_REQUEST_TIMEOUT_SECONDS); ask for less at once (fewer conditions, a "
        "smaller page)"
    )


@contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Run the block with a deadline `seconds` from now (None: no deadline)."""
    token = _budget.set(None if seconds is None else (time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _budget.reset(token)


def deadline() -> float | None:
    """The monotonic time by which the current request must be done, if it has one."""
    current = _budget.get()
    return None if current is None else current[0]


def seconds_left(end: float) -> float:
    return end - time.monotonic()


def is_past(end: float) -> bool:
    return time.monotonic() >= end
