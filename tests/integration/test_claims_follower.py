"""The claims follower against the real broker, with its fetch held long.

The broker holds the follower's fetch while nothing is new. These tests hold it 20 s (the worker's is
``CLAIMS_FETCH_WAIT_MS``) so that waiting it out cannot pass for being answered:

- a claim committed while the fetch is held is read back at once: a ``read_committed`` fetch is answered
  by the commit marker, so the hold costs a claim nothing (the design assumption the wait rests on);
- the index starts, and ``sync`` (every partition's activation) answers, without waiting for the held
  fetch: the offsets are asked on a connection of their own.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.kafka_fixtures import KafkaTopics, holding_consumer
from worker.pipeline.claims import claim_key
from worker.pipeline.claims_index import ClaimsIndex, ClaimsStore

pytestmark = pytest.mark.kafka

WITHIN_S = 5.0  # a quarter of the hold


def _index(bootstrap: str, topic: str) -> ClaimsIndex:
    return ClaimsIndex(
        topic=topic,
        open_store=lambda: ClaimsStore(None),
        consumer_factory=lambda: holding_consumer(bootstrap),
        offsets_consumer_factory=lambda: AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, isolation_level="read_committed"
        ),
        delete_retention_ms=86_400_000,
    )


async def _commit_claim(bootstrap: str, topic: str, key: str, partition: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-{key}")
    await producer.start()
    try:
        async with producer.transaction():
            value = b'{"trace_number":"T1","fingerprint":"f","command_topic":"c","command_partition":0,'
            value += b'"command_offset":%d}' % int(key.rsplit(":", 1)[1])
            await producer.send(topic, value, key=key.encode(), partition=partition)
    finally:
        await producer.stop()


async def _read_back_s(index: ClaimsIndex, key: str) -> float:
    started = time.monotonic()
    while not index.has(key):
        await asyncio.wait_for(index.wait_for_key(key, lambda: False), WITHIN_S)
        assert time.monotonic() - started < WITHIN_S, f"{key} not read back within {WITHIN_S} s"
    return time.monotonic() - started


async def test_a_claim_is_read_back_at_its_commit_and_sync_never_waits_out_the_held_fetch(
    kafka_topics: KafkaTopics,
) -> None:
    topic = await kafka_topics.create("claims", partitions=3)
    await _commit_claim(kafka_topics.bootstrap, topic, claim_key("c", 0, 1), partition=1)
    index = _index(kafka_topics.bootstrap, topic)

    await asyncio.wait_for(index.start(timeout_s=30.0), WITHIN_S)  # caught up: offset 1's claim is in
    try:
        assert index.has(claim_key("c", 0, 1))
        await asyncio.sleep(1.0)  # the follower's next fetch is sent, and held: nothing is new

        key = claim_key("c", 0, 2)
        committed = asyncio.create_task(_commit_claim(kafka_topics.bootstrap, topic, key, partition=2))
        assert await _read_back_s(index, key) < WITHIN_S
        await committed

        await asyncio.sleep(1.0)  # held again
        started = time.monotonic()
        await index.sync(timeout_s=30.0)
        assert time.monotonic() - started < WITHIN_S
        assert [entry.claim_offset for entry in index.entries("T1")] == [0, 0]  # one per partition
    finally:
        await index.stop()
