"""The review decisions feed: the decisions topic, read alongside the owned command partitions.

The decisions topic is co-partitioned with the commands topic. Every one of its partitions is assigned
to this worker's decisions consumer (no group) and kept paused, except those of owned command
partitions: partition *p* is resumed once command partition *p* is active, from its commit point (or the
offset the group committed in *p*'s transactions), and paused again when *p* is released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Set
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from worker.kafka.reading import seek_to_log_start
from worker.pipeline.offsets import OffsetTracker

__all__ = ["DecisionsFeed"]

log = logging.getLogger("ecash_worker.runner")

GroupCommitted = Callable[[TopicPartition], Awaitable[int | None]]


class DecisionsFeed:
    def __init__(self, topic: str, offsets: OffsetTracker, owned: Callable[[], Set[int]]) -> None:
        self.topic = topic
        self.consumer: Any = None  # set by ``start``
        self._offsets = offsets
        self._owned = owned
        self._group_committed: GroupCommitted | None = None

    async def start(self, consumer: Any) -> None:
        self.consumer = consumer
        await consumer.start()

    def use_group_offsets(self, committed: GroupCommitted) -> None:
        """Where the group's committed offsets are read (the commands consumer: they are committed in the
        command partitions' transactions)."""
        self._group_committed = committed

    async def assign(self) -> None:
        """Assign every partition of the decisions topic, paused; an owned one is resumed when active."""
        cluster = await self.consumer._client.fetch_all_metadata()  # no public way to refresh it
        found = cluster.partitions_for_topic(self.topic) or set()
        tps = {TopicPartition(self.topic, p) for p in found}
        if tps == set(self.consumer.assignment()):
            return
        self.consumer.assign(list(tps))
        self.consumer.pause(*tps)
        for partition in self._owned():  # a new assignment forgets positions: from what is committable
            await self.seek(partition)

    async def seek(self, partition: int) -> None:
        tp = TopicPartition(self.topic, partition)
        if tp not in self.consumer.assignment():
            await self.assign()
            if tp not in self.consumer.assignment():
                raise RuntimeError(f"the decisions topic {self.topic} has no partition {partition}")
        offset = self._offsets.of(partition).committable()
        if offset is None and self._group_committed is not None:
            offset = await self._group_committed(tp)  # the group's, committed in our transactions
        if offset is None:
            seek_to_log_start(self.consumer, tp)
        else:
            self.consumer.seek(tp, offset)

    def hold(self, partition: int, *, hold: bool) -> None:
        tp = TopicPartition(self.topic, partition)
        if self.consumer is None or tp not in self.consumer.assignment():
            return
        if hold:
            self.consumer.pause(tp)
        else:
            self.consumer.resume(tp)

    def rewind(self, partition: int, offset: int | None) -> None:
        """Read the partition again from ``offset`` (after a failed command); None: leave it."""
        tp = TopicPartition(self.topic, partition)
        if offset is not None and tp in self.consumer.assignment():
            self.consumer.seek(tp, offset)

    async def run(
        self, stopping: asyncio.Event, accepts: Callable[[int], bool], dispatch: Callable[[Any], None]
    ) -> None:
        """Fetch until ``stopping``; a message of a partition not ``accepts``-ed is read again later."""
        while not stopping.is_set():
            try:
                batch = await self.consumer.getmany(timeout_ms=200, max_records=500)
            except KafkaError as exc:
                log.warning("review decisions fetch failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for tp, messages in batch.items():
                if not accepts(tp.partition):
                    continue  # read again from the committed offset once active
                for message in messages:
                    dispatch(message)

    async def stop(self) -> None:
        if self.consumer is None:
            return
        try:
            await self.consumer.stop()
        except KafkaError as exc:
            log.warning("decisions consumer stop: %s", exc)
