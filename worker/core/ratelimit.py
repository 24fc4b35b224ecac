"""One token bucket shared by every API operation, so the worker never calls faster than the bank allows.

Waiters queue in arrival order (``asyncio.Lock`` is FIFO): only the head of the queue sleeps, for exactly
the time until its token, so a fake clock sees the true schedule. A cancelled waiter takes no token.
"""

from __future__ import annotations

import asyncio

from worker.clock import Clock

__all__ = ["RateLimiter"]

_EPSILON = 1e-9  # float rounding in the refill must not cost a waiter a second, near-zero sleep


class RateLimiter:
    """``rate_per_s`` tokens a second, at most ``burst`` saved up; ``rate_per_s == 0`` means no limit."""

    def __init__(self, rate_per_s: float, burst: int, clock: Clock) -> None:
        if rate_per_s < 0:
            raise ValueError("rate_per_s must be >= 0 (0 = unlimited)")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated_s = clock.monotonic_s()
        self._lock = asyncio.Lock()

    @property
    def unlimited(self) -> bool:
        return self.rate_per_s == 0

    async def acquire(self) -> None:
        """Wait for a token (via ``clock.sleep_s``), then take it."""
        if self.unlimited:
            return
        async with self._lock:
            while not self._take():
                await self._clock.sleep_s((1.0 - self._tokens) / self.rate_per_s)

    def _take(self) -> bool:
        now_s = self._clock.monotonic_s()
        elapsed_s = max(0.0, now_s - self._updated_s)
        self._tokens = min(float(self.burst), self._tokens + elapsed_s * self.rate_per_s)
        self._updated_s = now_s
        if self._tokens >= 1.0 - _EPSILON:
            self._tokens -= 1.0
            return True
        return False
