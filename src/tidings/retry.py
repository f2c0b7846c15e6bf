"""The retry schedule shared by the outbox, automation effects and webhook deliveries."""

from __future__ import annotations

from datetime import timedelta


def backoff(attempts: int, base: timedelta) -> timedelta:
    """Exponential: base, 2 x base, 4 x base, ... capped at one day."""
    delay: timedelta = base * (2 ** max(0, attempts - 1))
    return min(delay, timedelta(days=1))
