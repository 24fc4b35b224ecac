"""How the worker's process runs Python's cycle collector (docs/performance.md, "Garbage").

CPython collects its youngest generation after every 700 net allocations of container objects. A worker
at a backlog allocates far faster than that, and most of what it allocates is alive when the collector
looks (the commands in flight, the buffered messages), so each pass walks live objects for nothing and
the older generations are walked again and again: measured at 20,000 commands, 4,000 passes took 3.4 to
3.9 s of the worker's ~25 s of CPU (14%), and a full pass stopped the event loop for up to 94 ms.

So the collector looks less often: ``ECASH_GC_GEN0_THRESHOLD`` (5,000 by default) net allocations per
young pass; the older generations keep CPython's ratios. Not much less often: what garbage there is can be
large. aiokafka leaves a fetched batch it drops (a partition paused with records not yet taken, as at
the memory bound) in a reference cycle with its iterator, up to a megabyte each, and only the collector
frees it: with GC off the worker grew to 855 MiB in 60,000 commands at 0 ms, and at 25,000 it peaked
at 356 MiB against 154 at 700 and 159 at 5,000. The one cycle of the worker's own path, httpx's
response and its stream, is broken where the answer is read (``worker.ecash.session.release``).

What start-up built (modules, settings, clients) is frozen once: later full passes skip it.
"""

from __future__ import annotations

import gc

__all__ = ["OLDER_GENERATIONS", "freeze_start_up", "tune_collector"]

OLDER_GENERATIONS = (10, 10)  # CPython's own: a middle pass every 10 young ones, a full one every 10 of those


def tune_collector(gen0_threshold: int) -> None:
    """Collect the young generation after ``gen0_threshold`` net allocations (CPython: 700)."""
    gc.set_threshold(gen0_threshold, *OLDER_GENERATIONS)


def freeze_start_up() -> None:
    """Collect once, then move every object alive now out of the collector's sight for good: what start-up
    built lives as long as the process, and a full pass no longer walks it. Call once per process, after
    start-up and before the first command (what is frozen is never collected as a cycle again)."""
    gc.collect()
    gc.freeze()
