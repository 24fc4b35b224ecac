"""The event loop's lateness, measured by a timer (worker/observability/loop_lag.py)."""

from __future__ import annotations

import asyncio
import time

from worker.clock import SystemClock
from worker.events import LoopLagged, Recorder
from worker.observability.loop_lag import watch_loop_lag


async def test_a_loop_kept_busy_shows_as_lag_and_an_idle_one_does_not() -> None:
    events = Recorder()
    watch = asyncio.create_task(watch_loop_lag(events, SystemClock(), interval_s=0.01))
    await asyncio.sleep(0.05)  # idle: the timers fire on time
    idle = [e.seconds for e in events.events if isinstance(e, LoopLagged)]
    time.sleep(0.1)  # noqa: ASYNC251 - on purpose: a callback that holds the loop for 100 ms
    await asyncio.sleep(0.02)
    watch.cancel()
    lags = [e.seconds for e in events.events if isinstance(e, LoopLagged)]
    assert idle
    assert min(idle) < 0.05  # (not max: a busy CI machine may hold any one timer back)
    assert max(lags) >= 0.08  # the held loop: the timer fired ~90 ms late
