"""The partitioner contract (docs/contracts.md, "Record key and partitioner"), proven on a real broker.

201 MSISDN-keyed records (``examples/partitioners/msisdns.txt``: 9 to 15 digits, so every murmur2 tail
length) go to a 12-partition topic through librdkafka (confluent-kafka). With ``partitioner=murmur2_random``
every record lands where Java's default partitioner puts it (aiokafka's ``DefaultPartitioner``, itself
checked against Kafka's own ``BuiltInPartitioner.partitionForKey`` when Java and the broker's jars are
here); with librdkafka's default, ``consistent_random`` (CRC32), most do not: a producer that keeps the
default breaks per-wallet ordering.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import zlib
from collections.abc import Mapping
from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import KafkaError, Message, Producer

from ecash_dev.kafka import KAFKA_VERSION, default_cache_dir
from ecash_dev.stack import read_to_end
from tests.kafka_fixtures import KafkaTopics

pytestmark = pytest.mark.kafka

PARTITIONS = 12
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "partitioners"
MSISDNS = (EXAMPLES / "msisdns.txt").read_text(encoding="utf-8").split()
ALL_PARTITIONS = list(range(PARTITIONS))


def java_default_partition(msisdn: str) -> int:
    """Java's default partitioner for a keyed record: ``toPositive(murmur2(key)) % partitions``."""
    partition: int = DefaultPartitioner()(msisdn.encode(), ALL_PARTITIONS, ALL_PARTITIONS)
    return partition


def produce_with_librdkafka(bootstrap: str, topic: str, config: Mapping[str, str]) -> dict[str, int]:
    """Send every MSISDN (as key and value) through librdkafka; returns MSISDN -> delivered partition."""
    delivered: dict[str, int] = {}
    failures: list[str] = []

    def report(error: KafkaError | None, message: Message) -> None:
        key = message.key()
        assert isinstance(key, bytes)
        if error is not None:
            failures.append(f"{key!r}: {error}")
        else:
            partition = message.partition()
            assert partition is not None
            delivered[key.decode()] = partition

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **config})
    for msisdn in MSISDNS:
        producer.produce(topic, key=msisdn.encode(), value=msisdn.encode(), on_delivery=report)
    remaining = producer.flush(60.0)
    assert remaining == 0, f"{remaining} records not delivered in 60 s"
    assert failures == []
    return delivered


async def landed(bootstrap: str, topic: str) -> dict[str, int]:
    """MSISDN -> the partition its record is in, read back from the broker."""
    records = await read_to_end(bootstrap, topic)
    assert len(records) == len(MSISDNS)
    return {record.key.decode(): record.partition for record in records if record.key is not None}


def share(found: Mapping[str, int], expected: Mapping[str, int]) -> float:
    return sum(found[m] == expected[m] for m in expected) / len(expected)


def test_the_msisdns_cover_every_murmur2_tail_length() -> None:
    assert len(MSISDNS) == len(set(MSISDNS)) == 201
    assert {len(m) % 4 for m in MSISDNS} == {0, 1, 2, 3}
    assert all(m.isdigit() and 9 <= len(m) <= 15 for m in MSISDNS)


async def test_murmur2_random_places_every_record_where_java_does(kafka_topics: KafkaTopics) -> None:
    topic = await kafka_topics.create("murmur2-random", partitions=PARTITIONS)
    config = {"partitioner": "murmur2_random"}
    delivered = await asyncio.to_thread(produce_with_librdkafka, kafka_topics.bootstrap, topic, config)
    expected = {m: java_default_partition(m) for m in MSISDNS}
    found = await landed(kafka_topics.bootstrap, topic)
    print(f"partitioner=murmur2_random: {share(found, expected):.1%} of {len(MSISDNS)} where Java puts them")
    assert found == expected
    assert delivered == expected
    assert len(set(found.values())) == PARTITIONS  # every partition used: a real spread, not a constant


async def test_librdkafka_default_is_crc32_and_disagrees_with_java(kafka_topics: KafkaTopics) -> None:
    topic = await kafka_topics.create("consistent-random", partitions=PARTITIONS)
    delivered = await asyncio.to_thread(produce_with_librdkafka, kafka_topics.bootstrap, topic, {})
    expected = {m: java_default_partition(m) for m in MSISDNS}
    found = await landed(kafka_topics.bootstrap, topic)
    agreement = share(found, expected)
    print(f"librdkafka default (consistent_random): {agreement:.1%} of {len(MSISDNS)} where Java puts them")
    assert found == delivered
    # what the default is: CRC32 of the key, unsigned, modulo the partition count
    assert found == {m: zlib.crc32(m.encode()) % PARTITIONS for m in MSISDNS}
    assert agreement < 0.5


def _java_and_jars() -> tuple[str, Path] | None:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    libs = default_cache_dir(os.environ) / f"kafka-{KAFKA_VERSION}" / "libs"
    if not java or not list(libs.glob("kafka-clients-*.jar")):
        return None
    return java, libs


def test_aiokafkas_partitioner_is_the_java_clients_own() -> None:
    """aiokafka's port against ``BuiltInPartitioner.partitionForKey`` from the broker's kafka-clients jar."""
    found = _java_and_jars()
    if found is None:
        pytest.skip("no java or no Kafka jars (ECASH_TEST_KAFKA_BOOTSTRAP set, jars never fetched)")
    java, libs = found
    run = subprocess.run(
        [java, "-cp", f"{libs}/*", str(EXAMPLES / "java" / "PartitionFor.java"), str(PARTITIONS)],
        input="\n".join(MSISDNS),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    java_partitions = {m: int(p) for m, p in (line.split() for line in run.stdout.splitlines())}
    assert java_partitions == {m: java_default_partition(m) for m in MSISDNS}
