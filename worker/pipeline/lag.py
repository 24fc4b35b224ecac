"""Lag, for the gauges: how far each owned partition's commit point is behind its end.

A paused consumer fetches nothing, so its high watermarks go stale: ``EndOffsets`` asks the broker for the
owned partitions' end offsets every few seconds, paused or not. The rest is pure arithmetic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Set
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from worker.clock import Clock

__all__ = ["EndOffsets", "age_s", "highwater", "lag_messages"]

log = logging.getLogger("ecash_worker.runner")


def lag_messages(
    highwater: int | None, known_end: int | None, committable: int | None, committed: int | None
) -> int | None:
    """Messages between the commit point and the end (the later of the fetched high watermark and the
    end offset last asked for); None while either is unknown."""
    high = highwater
    if known_end is not None:
        high = known_end if high is None else max(high, known_end)
    start = committable if committable is not None else committed
    if high is None or start is None:
        return None
    return max(0, high - start)


def age_s(now_s: float, oldest_ms: int | None) -> float:
    """Seconds since ``oldest_ms`` (epoch milliseconds); 0 when there is nothing (None or 0)."""
    return max(0.0, now_s - oldest_ms / 1000) if oldest_ms else 0.0


def highwater(consumer: Any, tp: TopicPartition) -> int | None:
    """The consumer's last fetched high watermark of ``tp``, None when it has none (not fetched yet)."""
    try:
        value = consumer.highwater(tp)
    except (KafkaError, AssertionError, KeyError):
        return None
    return None if value is None else int(value)


class EndOffsets:
    """The owned partitions' end offsets, refreshed every ``every_s`` even while they are paused."""

    def __init__(self, topic: str, clock: Clock, every_s: float = 5.0) -> None:
        self.topic = topic
        self.ends: dict[int, int] = {}
        self._clock = clock
        self._every_s = every_s

    async def run(self, consumer: Callable[[], Any], owned: Callable[[], Set[int]]) -> None:
        while True:
            await self._clock.sleep_s(self._every_s)
            tps = [TopicPartition(self.topic, p) for p in sorted(owned())]
            if not tps:
                continue
            try:
                ends = await consumer().end_offsets(tps)
            except (KafkaError, AssertionError) as exc:
                log.debug("end offsets unavailable: %s", exc)
                continue
            self.ends = {tp.partition: offset for tp, offset in ends.items()}
