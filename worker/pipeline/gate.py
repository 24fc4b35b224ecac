"""Whether new money may be sent now: the circuit breaker's word and any fatal configuration error.

Resolution of what is already in flight does not pass through the gate (only slows down while the
breaker is open): finding out what happened to money already sent is always allowed.
"""

from __future__ import annotations

from collections.abc import Callable

from worker.clock import Clock
from worker.core.breaker import CircuitBreaker

__all__ = ["Gate"]


class Gate:
    def __init__(self, breaker: CircuitBreaker, clock: Clock, *, poll_s: float = 0.2) -> None:
        self.breaker = breaker
        self._clock = clock
        self._poll_s = poll_s
        self.fatal: str | None = None

    def set_fatal(self, reason: str) -> None:
        self.fatal = reason

    def clear_fatal(self) -> None:
        self.fatal = None

    @property
    def open_for_new_work(self) -> bool:
        """For the consumer: fetch new commands only when they could be sent."""
        return self.fatal is None and self.breaker.state == "closed"

    def pace_factor(self) -> float:
        return float(self.breaker.resolution_pace_factor)

    async def wait_for_new_work(self, abandoned: Callable[[], bool]) -> bool:
        """Wait until a new money call is allowed; False if the job was abandoned meanwhile."""
        while True:
            if abandoned():
                return False
            if self.fatal is None and self.breaker.allow_new_work():
                return True
            await self._clock.sleep_s(self._poll_s)
