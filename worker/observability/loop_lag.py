"""How late the event loop runs: a timer set every ``interval_s``, and how much later than asked it fired.

Every await of the worker (a transaction's round trips, an API call's response, a claim read back) waits
at least this long on top of its own time when the process is short of CPU: one number that says whether
a slow command is the broker's, the bank's or this process's doing (``ecash_event_loop_lag_seconds``).
"""

from __future__ import annotations

from worker.clock import Clock
from worker.events import EventSink, LoopLagged

__all__ = ["LAG_INTERVAL_S", "watch_loop_lag"]

LAG_INTERVAL_S = 0.25


async def watch_loop_lag(sink: EventSink, clock: Clock, interval_s: float = LAG_INTERVAL_S) -> None:
    """Until cancelled: one ``LoopLagged`` per ``interval_s``, the timer's lateness."""
    while True:
        started_s = clock.monotonic_s()
        await clock.sleep_s(interval_s)
        sink.emit(LoopLagged(max(0.0, clock.monotonic_s() - started_s - interval_s)))
