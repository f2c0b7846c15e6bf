"""Rate limits: a global one and one per recipient domain, as token buckets whose time and
sleep are injectable (tests never sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """A rate limit; time and sleep are injectable."""

    def __init__(
        self,
        rate: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.monotonic = monotonic
        self.sleep = sleep
        self.last = monotonic()
        self.lock = asyncio.Lock()

    async def take(self) -> None:
        async with self.lock:
            while True:
                now = self.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await self.sleep((1 - self.tokens) / self.rate)


class RateLimits:
    """The sender's limits: messages per second overall and per recipient domain (None: no
    limit). `wait(address)` returns when one more message to `address` may go."""

    def __init__(
        self,
        rate_per_second: float | None,
        domain_rate_per_second: float | None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.monotonic, self.sleep = monotonic, sleep
        self.domain_rate = domain_rate_per_second
        self.overall = self._bucket(rate_per_second) if rate_per_second else None
        self.domains: dict[str, TokenBucket] = {}

    def _bucket(self, rate: float) -> TokenBucket:
        return TokenBucket(rate, monotonic=self.monotonic, sleep=self.sleep)

    async def wait(self, address: str) -> None:
        if self.overall is not None:
            await self.overall.take()
        if self.domain_rate:
            domain = address.rpartition("@")[2]
            bucket = self.domains.get(domain)
            if bucket is None:
                bucket = self.domains[domain] = self._bucket(self.domain_rate)
            await bucket.take()
