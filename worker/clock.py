"""The one place time is read. Everything that schedules takes a Clock, so tests run in milliseconds."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    def monotonic_s(self) -> float:
        """Seconds on a clock that never goes backwards (for intervals and deadlines)."""

    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC (for timestamps in events)."""

    async def sleep_s(self, seconds: float) -> None:
        """Wait; a fake clock advances instead."""


class SystemClock:
    def monotonic_s(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_s(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when told to (or when slept on): schedules test without sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self._mono_s = 1000.0
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.slept_s: list[float] = []

    def monotonic_s(self) -> float:
        return self._mono_s

    def now(self) -> datetime:
        from datetime import timedelta

        return self._start + timedelta(seconds=self._mono_s - 1000.0)

    def advance(self, seconds: float) -> None:
        self._mono_s += seconds

    async def sleep_s(self, seconds: float) -> None:
        self.slept_s.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)
