"""read_to_end against the real broker: transactional topics (markers, an aborted transaction), an empty
partition, and a writer going on during the read."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.kafka_fixtures import KafkaTopics
from worker.kafka.reading import read_to_end

pytestmark = pytest.mark.kafka


async def _transactional(
    bootstrap: str, topic: str, values: list[tuple[int, bytes]], *, commit: bool
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-{commit}")
    await producer.start()
    try:
        await producer.begin_transaction()
        for partition, value in values:
            await producer.send_and_wait(topic, value, partition=partition)
        if commit:
            await producer.commit_transaction()
        else:
            await producer.abort_transaction()
    finally:
        await producer.stop()


def _reader(bootstrap: str) -> Any:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )


async def test_a_transactional_topic_is_read_to_its_end_without_aborted_records(
    kafka_topics: KafkaTopics,
) -> None:
    topic = await kafka_topics.create("read", partitions=3)
    bootstrap = kafka_topics.bootstrap
    await _transactional(bootstrap, topic, [(0, b"a0"), (0, b"a1"), (1, b"b0")], commit=True)
    await _transactional(bootstrap, topic, [(0, b"aborted"), (1, b"aborted")], commit=False)
    await _transactional(bootstrap, topic, [(1, b"b1")], commit=True)
    # partition 2 stays empty; every partition with data ends with a commit or abort marker
    consumer = _reader(bootstrap)
    await consumer.start()
    got: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        writer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await writer.start()
        try:

            def keep(record: Any) -> None:
                got.append(record)
                if len(got) == 1:  # written during the read: not part of it
                    asyncio.get_running_loop().create_task(writer.send_and_wait(topic, b"late", partition=0))

            count = await read_to_end(consumer, tps, keep, stall_timeout_s=20.0)
            await writer.flush()
        finally:
            await writer.stop()
    finally:
        await consumer.stop()
    assert count == 4
    assert sorted((r.partition, r.value) for r in got) == [(0, b"a0"), (0, b"a1"), (1, b"b0"), (1, b"b1")]
