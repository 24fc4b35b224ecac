"""Backpressure: which command partitions the consumer may fetch from now, and how much it may take.

Pure decisions; the runner applies them (``pause``/``resume``) before every fetch. Memory is bounded by
``ECASH_MAX_BUFFERED``: at the bound every partition pauses until lanes drain. While the API is unhealthy
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
    "PauseChanges",
    "fetch_max_records",
    "hold_all",
    "pause_changes",
    "resettable",
]

FETCH_MAX_RECORDS = 1000  # one fetch's records at most, whatever room the bound leaves


def hold_all(*, fatal: str | None, buffered: int, max_buffered: int) -> bool:
    """Every partition pauses: a fatal configuration error stands, or the memory bound is reached."""
    return fatal is not None or buffered >= max_buffered


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
