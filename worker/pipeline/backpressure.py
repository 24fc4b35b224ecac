"""Backpressure: which command partitions the consumer may fetch from now, and how much it may take.

Pure decisions; the runner applies them (``pause``/``resume``) before every fetch. Memory is bounded by
``ECASH_MAX_BUFFERED``: at the bound the runner stops fetching and waits for room, and if none comes
within ``FULL_PATIENCE_S`` every partition pauses until lanes drain. While the API is unhealthy
(breaker not closed) fetching goes on up to that bound: commands wait at the gate, each holding an
in-flight slot, while what needs no slot (review decisions, rejections, dead letters: lanes.py) is applied
during the outage. Only a fatal configuration error stops fetching altogether.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass

from aiokafka import TopicPartition

__all__ = [
    "FETCH_MAX_RECORDS",
    "FULL_PATIENCE_S",
    "PauseChanges",
    "fetch_max_records",
    "hold_all",
    "pause_changes",
    "resettable",
    "wait_for_room",
]

FETCH_MAX_RECORDS = 1000  # one fetch's records at most, whatever room the bound leaves
# At the memory bound the runner first waits this long for room without fetching and without pausing:
# a paused partition makes aiokafka drop the batch it fetched for it (to fetch it again, and to leave it in
# a reference cycle until the cycle collector runs; worker/gc_policy.py). Past it, every partition pauses
# and fetching goes on (the consumer polls, so the group keeps it) until lanes drain.
FULL_PATIENCE_S = 1.0


def hold_all(*, fatal: str | None, buffered: int, max_buffered: int, full_for_s: float) -> bool:
    """Every partition pauses: a fatal configuration error stands, or the memory bound has been reached
    for ``FULL_PATIENCE_S`` (``full_for_s``: how long the buffer has been full, 0 if it is not)."""
    return fatal is not None or (buffered >= max_buffered and full_for_s >= FULL_PATIENCE_S)


def wait_for_room(*, fatal: str | None, buffered: int, max_buffered: int, full_for_s: float) -> bool:
    """At the bound, not yet past ``FULL_PATIENCE_S``: wait for a lane to drain instead of fetching."""
    return buffered >= max_buffered and not hold_all(
        fatal=fatal, buffered=buffered, max_buffered=max_buffered, full_for_s=full_for_s
    )


def fetch_max_records(*, buffered: int, max_buffered: int) -> int:
    """How many records the next fetch may bring: the room left under the bound (at least 1)."""
    return max(1, min(max_buffered - buffered, FETCH_MAX_RECORDS))


@dataclass(frozen=True)
class PauseChanges:
    pause: frozenset[TopicPartition]
    resume: frozenset[TopicPartition]


def pause_changes(
    assigned: Set[TopicPartition],
    paused_now: Set[TopicPartition],
    *,
    owned: Set[int],
    needs_reset: Set[int],
    hold: bool,
) -> PauseChanges:
    """What to pause and resume so that exactly these are paused: every assigned partition when ``hold``,
    else those not owned (still activating, or lost) and those waiting to be rewound after a failure."""
    paused = frozenset(
        tp for tp in assigned if hold or tp.partition not in owned or tp.partition in needs_reset
    )
    return PauseChanges(pause=paused - paused_now, resume=frozenset((assigned - paused) & paused_now))


def resettable(needs_reset: Iterable[int], running_partitions: Set[int]) -> list[int]:
    """The partitions that may be rewound now: a failed command's partition, once none of its jobs runs."""
    return [partition for partition in needs_reset if partition not in running_partitions]
