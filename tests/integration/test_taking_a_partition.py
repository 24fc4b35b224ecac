"""Taking a partition while the consumer reads others, against the real broker.

A consumer that is already reading some partitions has a fetch in flight, and the broker holds a fetch
with nothing to return for ``fetch_max_wait_ms``. aiokafka's ``seek_to_beginning`` waited for that fetch:
a partition taken during a rebalance (its decisions partition, with no offset committed yet) stood idle
for up to 500 ms before its first record. The consumers here hold their fetches for 20 s, so waiting for
the fetch cannot pass for taking the partition at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete

from tests.kafka_fixtures import HELD_FETCH_MS, KafkaTopics, holding_consumer
from worker.kafka.reading import seek_to_log_start
from worker.pipeline.decisions import DecisionsFeed
from worker.pipeline.offsets import OffsetTracker

pytestmark = pytest.mark.kafka

TAKEN_WITHIN_S = 5.0  # a quarter of the held fetch: the seek must not wait for it


async def _topic_whose_partition_1_starts_at_2(kafka_topics: KafkaTopics) -> str:
    """Partition 0 empty (the one being read); partition 1 with four records, the first two deleted."""
    topic = await kafka_topics.create("decisions", partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_topics.bootstrap)
    await producer.start()
    try:
        for value in (b"a", b"b", b"c", b"d"):
            await producer.send_and_wait(topic, value, partition=1)
    finally:
        await producer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_topics.bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 1): RecordsToDelete(before_offset=2)})
    finally:
        await admin.close()
    return topic


async def _reading_partition_0(consumer: Any, topic: str) -> asyncio.Task[Any]:
    """Partition 0 is being read: the fetch for it is in flight and held by the broker."""
    reading = asyncio.create_task(consumer.getmany(TopicPartition(topic, 0), timeout_ms=HELD_FETCH_MS * 2))
    await asyncio.sleep(1.0)  # the fetcher sends its fetch, the broker holds it
    assert not reading.done()
    return reading


async def _first_records_of_partition_1(bootstrap: str, consumer: Any, topic: str) -> list[tuple[int, bytes]]:
    """Partition 1 resumed, a record for partition 0 answers the held fetch; then what partition 1 delivers
    from its position (the next fetch has it)."""
    tp = TopicPartition(topic, 1)
    consumer.resume(tp)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"for partition 0", partition=0)
    finally:
        await producer.stop()
    got: list[tuple[int, bytes]] = []
    deadline = asyncio.get_running_loop().time() + TAKEN_WITHIN_S * 2
    while len(got) < 2 and asyncio.get_running_loop().time() < deadline:
        batch = await consumer.getmany(tp, timeout_ms=500)
        got += [(record.offset, record.value) for record in batch.get(tp, [])]
    return got


async def test_a_partition_taken_while_another_is_read_starts_at_its_log_start(
    kafka_topics: KafkaTopics,
) -> None:
    topic = await _topic_whose_partition_1_starts_at_2(kafka_topics)
    consumer = holding_consumer(kafka_topics.bootstrap)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        consumer.pause(TopicPartition(topic, 1))
        reading = await _reading_partition_0(consumer, topic)

        seek_to_log_start(consumer, TopicPartition(topic, 1))

        got = await _first_records_of_partition_1(kafka_topics.bootstrap, consumer, topic)
        assert got == [(2, b"c"), (3, b"d")]  # the deleted two are below the log start, nothing is skipped
        reading.cancel()
    finally:
        await consumer.stop()


async def test_the_decisions_feed_takes_a_partition_while_it_reads_another(kafka_topics: KafkaTopics) -> None:
    topic = await _topic_whose_partition_1_starts_at_2(kafka_topics)
    owned: set[int] = {0}
    feed = DecisionsFeed(topic, OffsetTracker(), owned=lambda: owned)
    await feed.start(holding_consumer(kafka_topics.bootstrap))
    try:
        await feed.assign()  # every partition, paused; partition 0 (owned) placed at its start
        feed.hold(0, hold=False)
        reading = await _reading_partition_0(feed.consumer, topic)

        owned.add(1)  # command partition 1 taken: its decisions, nothing committed for them yet
        await asyncio.wait_for(feed.seek(1), TAKEN_WITHIN_S)

        got = await _first_records_of_partition_1(kafka_topics.bootstrap, feed.consumer, topic)
        assert got == [(2, b"c"), (3, b"d")]
        reading.cancel()
    finally:
        await feed.consumer.stop()
