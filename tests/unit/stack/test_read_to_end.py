"""ecash_dev.stack.read_to_end: worker.kafka.reading's stop rule, TopicRecords out, a stall as StackError."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition

from ecash_dev.stack import StackError, TopicRecord, read_to_end
from ecash_dev.stack import topics as stack_topics
from worker.clock import FakeClock

TOPIC = "t"


@dataclass(frozen=True)
class Message:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


class FakeConsumer:
    """A consumer over fixed partitions: ``ends[p]`` offsets, each one a record; ``stuck`` ones never move."""

    def __init__(self, ends: dict[int, int], clock: FakeClock, stuck: frozenset[int] = frozenset()) -> None:
        self.ends, self.clock, self.stuck = ends, clock, stuck
        self.positions: dict[TopicPartition, int] = {}
        self.kwargs: dict[str, Any] = {}
        self.stopped = False

    async def start(self) -> None: ...

    async def stop(self) -> None:
        self.stopped = True

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp.partition] for tp in partitions}

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(partitions, 0)

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self.positions[tp] = 0

    async def position(self, partition: TopicPartition) -> int:
        return self.positions[partition]

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Message]]:
        batch: dict[TopicPartition, list[Message]] = {}
        for tp in partitions:
            if tp.partition in self.stuck:
                continue
            start = self.positions[tp]
            offsets = range(start, self.ends[tp.partition])
            batch[tp] = [
                Message(tp.partition, o, b"k", f"{tp.partition}:{o}".encode(), 1000 + o) for o in offsets
            ]
            self.positions[tp] = self.ends[tp.partition]
        if not any(batch.values()):
            self.clock.advance(timeout_ms / 1000)
        await asyncio.sleep(0)
        return batch


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> FakeConsumer:
    fake = FakeConsumer({0: 2, 1: 0, 2: 3}, FakeClock())

    async def partition_ids(bootstrap: str, topic: str, client_kwargs: Any = None) -> list[int]:
        return sorted(fake.ends)

    def build(**kwargs: Any) -> FakeConsumer:
        fake.kwargs = kwargs
        return fake

    monkeypatch.setattr(stack_topics, "partition_ids", partition_ids)
    monkeypatch.setattr(stack_topics, "AIOKafkaConsumer", build)
    return fake


async def test_every_committed_record_up_to_the_end_offsets_as_topic_records(consumer: FakeConsumer) -> None:
    records = await read_to_end("localhost:9092", TOPIC, clock=consumer.clock)

    assert sorted((r.partition, r.offset) for r in records) == [(0, 0), (0, 1), (2, 0), (2, 1), (2, 2)]
    assert TopicRecord(2, 1, b"k", b"2:1", 1001) in records
    assert consumer.kwargs["isolation_level"] == "read_committed"
    assert consumer.stopped


async def test_a_read_that_stalls_is_a_stack_error_not_a_partial_read(consumer: FakeConsumer) -> None:
    consumer.stuck = frozenset({2})

    with pytest.raises(StackError, match=r"reading t: nothing arrived for 5 s \(partitions 2 at 0 of 3\)"):
        await read_to_end("localhost:9092", TOPIC, stall_timeout_s=5.0, clock=consumer.clock)
    assert consumer.stopped
