"""Kafka for the benchmark: a run's topics, producing the commands, counting and reading the results.

Reading goes through ``worker.kafka.reading.read_to_end`` (one stop rule: the end offsets taken at the
start; ``ReadStalled`` after a stall, never a partial read)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from ecash_dev.stack import CommandProducer, namespaced
from worker.kafka.admin import ensure_topics, worker_topic_specs
from worker.kafka.reading import read_to_end
from worker.settings import SANDBOX_API_IDENTITY, load_settings


@dataclass(frozen=True)
class Topics:
    prefix: str
    partitions: int

    def settings(self) -> dict[str, Any]:
        return namespaced(self.prefix, self.partitions)

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"

    @property
    def results(self) -> str:
        return f"{self.prefix}.results"

    @property
    def journal(self) -> str:
        return f"{self.prefix}.journal"

    @property
    def claims(self) -> str:
        return f"{self.prefix}.claims"


async def create_topics(bootstrap: str, topics: Topics) -> None:
    settings = load_settings(kafka_bootstrap_servers=bootstrap, **SANDBOX_API_IDENTITY, **topics.settings())
    await ensure_topics(bootstrap, worker_topic_specs(settings), client_kwargs={})


async def produce(
    bootstrap: str, topic: str, messages: Iterator[tuple[bytes, bytes]], rate_per_s: float | None = None
) -> int:
    """Send every message (acks=all); at ``rate_per_s`` if given, else as fast as the producer goes."""
    started = time.monotonic()
    async with CommandProducer(bootstrap, topic, linger_ms=1 if rate_per_s else 20) as producer:
        for key, value in messages:
            if rate_per_s:
                ahead_s = started + producer.sent / rate_per_s - time.monotonic()
                if ahead_s > 0:
                    await asyncio.sleep(ahead_s)
            await producer.send(value, key)
            if producer.sent % 10_000 == 0:
                await producer.flush()
        return producer.sent


class EndOffsets:
    """How many records a topic holds (the sum of its partitions' end offsets), asked cheaply."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        self._tps = [TopicPartition(topic, p) for p in range(partitions)]

    async def __aenter__(self) -> EndOffsets:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def total(self) -> int:
        ends = await self._consumer.end_offsets(self._tps)
        return int(sum(ends.values()))


async def read_topic(
    bootstrap: str, topic: str, partitions: int, handle: Callable[[Any], None], timeout_s: float = 600.0
) -> int:
    """Feed every committed record now in ``topic`` to ``handle``; returns how many.

    ``read_committed`` (results are written in transactions), read to the end offsets taken at the start
    (``worker.kafka.reading.read_to_end``: it raises if the read stalls for ``timeout_s``, never returns
    a partial read).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_bytes=64 * 1024**2,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return await read_to_end(consumer, tps, handle, stall_timeout_s=timeout_s, max_records=20_000)
    finally:
        await consumer.stop()
