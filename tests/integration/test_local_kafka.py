"""The local broker is a real Kafka: consumer groups, manual commits, idempotence, compaction configs, and
data that survives restarts and crashes (what the worker and the chaos run rely on)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from ecash_dev.kafka import BrokerError, ExternalKafka, LocalKafka, ensure_broker, free_ports, local_config
from ecash_dev.kafka.jvm_files import fetch_jars
from tests.kafka_fixtures import KafkaTopics, LocalKafkaFactory, unique_prefix
from worker.kafka.admin import TopicError, TopicSpec, journal_topic_spec, review_topic_spec

pytestmark = pytest.mark.kafka

READ_TIMEOUT_S = 30.0


@asynccontextmanager
async def producer(bootstrap: str, **kwargs: Any) -> AsyncIterator[Any]:
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **kwargs)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


@asynccontextmanager
async def consumer(bootstrap: str, group: str, *topics: str, **kwargs: Any) -> AsyncIterator[Any]:
    client = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kwargs,
    )
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def read(client: Any, count: int) -> list[Any]:
    """Exactly ``count`` records (fails on timeout), in the order the consumer returned them."""
    records: list[Any] = []
    async with asyncio.timeout(READ_TIMEOUT_S):
        while len(records) < count:
            batches = await client.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
    return records


async def produce_numbered(bootstrap: str, topic: str, count: int, *, key: bytes = b"k") -> None:
    async with producer(bootstrap) as client:
        for number in range(count):
            await client.send_and_wait(topic, str(number).encode(), key=key)


async def test_consumer_group_keeps_order_per_key_across_partitions(
    kafka_bootstrap: str, kafka_topics: KafkaTopics
) -> None:
    topic = await kafka_topics.create("commands", partitions=3)
    keys = [f"0812000000{n}".encode() for n in range(6)]
    async with producer(kafka_bootstrap) as client:
        for number in range(10):
            for key in keys:
                await client.send(topic, f"{number}".encode(), key=key)
        await client.flush()
    async with consumer(kafka_bootstrap, kafka_topics.name("group"), topic) as client:
        records = await read(client, 60)
    per_key: dict[bytes, list[int]] = {}
    for record in records:
        per_key.setdefault(record.key, []).append(int(record.value))
    assert per_key == {key: list(range(10)) for key in keys}
    assert len({record.partition for record in records}) > 1


async def test_a_new_group_member_resumes_after_the_committed_offset(
    kafka_bootstrap: str, kafka_topics: KafkaTopics
) -> None:
    topic = await kafka_topics.create("commands")
    group = kafka_topics.name("group")
    await produce_numbered(kafka_bootstrap, topic, 10)
    async with consumer(kafka_bootstrap, group, topic) as first:
        assert [int(r.value) for r in await read(first, 10)] == list(range(10))
        await first.commit({TopicPartition(topic, 0): 4})  # 0..3 done; 4 onwards not
    async with consumer(kafka_bootstrap, group, topic) as second:
        assert [int(r.value) for r in await read(second, 6)] == list(range(4, 10))
        assert await second.committed(TopicPartition(topic, 0)) == 4


async def test_idempotent_producer_with_acks_all_writes_each_message_once(
    kafka_bootstrap: str, kafka_topics: KafkaTopics
) -> None:
    topic = await kafka_topics.create("results", partitions=2)
    async with producer(kafka_bootstrap, linger_ms=5) as client:
        sends = [await client.send(topic, str(n).encode(), key=str(n % 4).encode()) for n in range(200)]
        metadata = await asyncio.gather(*sends)
    assert len({(m.partition, m.offset) for m in metadata}) == 200
    async with consumer(kafka_bootstrap, kafka_topics.name("group"), topic) as reader:
        values = sorted(int(r.value) for r in await read(reader, 200))
        assert values == list(range(200))
        assert await reader.getmany(timeout_ms=500) == {}


async def test_transactions_hide_aborted_writes_from_read_committed_consumers(
    kafka_bootstrap: str, kafka_topics: KafkaTopics
) -> None:
    topic = await kafka_topics.create("journal")
    async with producer(kafka_bootstrap, transactional_id=kafka_topics.name("tx")) as client:
        async with client.transaction():
            await client.send_and_wait(topic, b"kept")
        await client.begin_transaction()
        await client.send_and_wait(topic, b"aborted")
        await client.abort_transaction()
        async with client.transaction():
            await client.send_and_wait(topic, b"kept-too")
    group = kafka_topics.name("group")
    async with consumer(kafka_bootstrap, group, topic, isolation_level="read_committed") as reader:
        assert [r.value for r in await read(reader, 2)] == [b"kept", b"kept-too"]


async def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    entries = response.to_object()["resources"][0]["config_entries"]
    return {entry["config_names"]: entry["config_value"] for entry in entries}


async def test_journal_and_review_topics_are_created_compacted_and_creation_is_idempotent(
    kafka_bootstrap: str, kafka_topics: KafkaTopics
) -> None:
    journal = journal_topic_spec(kafka_topics.name("journal"), 3, 1, retention_s=7 * 86_400)
    review = review_topic_spec(kafka_topics.name("review"), 3, 1)
    await kafka_topics.create_specs([journal, review])
    await kafka_topics.create_specs([journal, review])  # a second worker starting: nothing to do

    journal_configs = await topic_configs(kafka_bootstrap, journal.name)
    # never deleted by age (an intent in doubt outlives any retention); the broker's clock on every record
    assert journal_configs["cleanup.policy"] == "compact"
    assert journal_configs["message.timestamp.type"] == "LogAppendTime"
    assert (await topic_configs(kafka_bootstrap, review.name))["cleanup.policy"] == "compact"


async def test_an_existing_topic_with_another_partition_count_is_refused(
    kafka_bootstrap: str, kafka_topics: KafkaTopics
) -> None:
    topic = await kafka_topics.create("commands", partitions=2)
    with pytest.raises(TopicError, match=r"exists with 2 partitions, expected 3"):
        await kafka_topics.create_specs([TopicSpec(topic, 3)])


async def test_topics_get_their_configs_even_where_the_cluster_auto_creates_topics(
    local_kafka_factory: LocalKafkaFactory, request: pytest.FixtureRequest
) -> None:
    broker = await asyncio.to_thread(local_kafka_factory, {"auto.create.topics.enable": "true"})
    topics = KafkaTopics(broker.bootstrap, unique_prefix(request.node.name))
    journal = journal_topic_spec(topics.name("journal"), 4, 1, retention_s=3600)

    await topics.create_specs([journal])

    assert (await topic_configs(broker.bootstrap, journal.name))["cleanup.policy"] == "compact"
    await topics.create_specs([journal])  # and finding it again does not trip over its partitions


async def commit_then_check_after(
    broker: LocalKafka, restart: Callable[[], str], topics: KafkaTopics
) -> None:
    """Write 10 messages, commit offset 6, restart the broker: data and the commit are still there."""
    bootstrap = broker.bootstrap
    topic = await topics.create("commands")
    group = topics.name("group")
    await produce_numbered(bootstrap, topic, 10)
    async with consumer(bootstrap, group, topic) as before:
        await read(before, 10)
        await before.commit({TopicPartition(topic, 0): 6})

    assert await asyncio.to_thread(restart) == bootstrap

    await produce_numbered(bootstrap, topic, 1, key=b"after")
    async with consumer(bootstrap, group, topic) as after:
        assert [r.value for r in await read(after, 5)] == [b"6", b"7", b"8", b"9", b"0"]


async def test_a_clean_restart_keeps_topics_messages_and_committed_offsets(
    local_kafka_factory: LocalKafkaFactory, request: pytest.FixtureRequest
) -> None:
    broker = await asyncio.to_thread(local_kafka_factory, None)
    topics = KafkaTopics(broker.bootstrap, unique_prefix(request.node.name))
    await commit_then_check_after(broker, broker.restart, topics)


async def test_a_crash_and_restart_keeps_topics_messages_and_committed_offsets(
    local_kafka_factory: LocalKafkaFactory, request: pytest.FixtureRequest
) -> None:
    broker = await asyncio.to_thread(local_kafka_factory, None)
    topics = KafkaTopics(broker.bootstrap, unique_prefix(request.node.name))
    await commit_then_check_after(broker, lambda: broker.restart(hard=True), topics)


def test_stop_frees_the_port_and_status_says_stopped(local_kafka_factory: LocalKafkaFactory) -> None:
    broker = local_kafka_factory(None)
    running = broker.status()
    assert running.answering
    assert running.pid is not None

    assert broker.stop() is True

    stopped = broker.status()
    assert not stopped.running
    assert not stopped.answering
    assert not broker.config.pid_file.exists()
    assert broker.stop() is False  # stopping twice is fine
    assert broker.start() == broker.bootstrap  # and the same data dir starts again


def test_a_port_in_use_is_reported_before_anything_starts(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        port = squatter.getsockname()[1]
        config = local_config(os.environ, port=port, data_dir=tmp_path / "kafka")
        with pytest.raises(BrokerError, match=rf"port 127.0.0.1:{port} is in use"):
            LocalKafka(config).start()
    assert not config.pid_file.exists()


def test_ensure_broker_uses_an_answering_configured_cluster_without_starting_one(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    environ = {"ECASH_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    broker = ensure_broker(environ, data_dir=tmp_path / "unused", cache_dir=tmp_path / "cache")
    assert broker == ExternalKafka(kafka_bootstrap)
    assert not (tmp_path / "unused").exists()


def test_ensure_broker_refuses_a_configured_cluster_that_does_not_answer(tmp_path: Path) -> None:
    [silent_port] = free_ports(1)
    environ = {"ECASH_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{silent_port}"}
    with pytest.raises(BrokerError, match=r"ECASH_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:\d+ does not answer"):
        ensure_broker(environ, port=silent_port + 1, data_dir=tmp_path / "unused")


REPO = Path(__file__).resolve().parents[2]


def devkafka(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ecash_dev.kafka", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=180, check=False)


def test_one_command_starts_reports_and_stops_a_broker(tmp_path: Path) -> None:
    port, controller_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if k != "ECASH_KAFKA_BOOTSTRAP_SERVERS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # A data dir relative to where the command runs, as a person would type it.
    where = ["--port", str(port), "--controller-port", str(controller_port), "--data-dir", "kafka-data"]
    try:
        started = devkafka("start", "--runtime", "jvm", *where, env=env, cwd=tmp_path)
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"127.0.0.1:{port}"
        status = devkafka("status", "--runtime", "jvm", *where, env=env, cwd=tmp_path)
        assert status.returncode == 0
        assert "running" in status.stderr
    finally:
        stopped = devkafka("stop", "--runtime", "jvm", *where, env=env, cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    after = devkafka("status", "--runtime", "jvm", *where, env=env, cwd=tmp_path)
    assert after.returncode == 3
    assert "stopped" in after.stderr
    assert (tmp_path / "kafka-data" / "kraft" / "meta.properties").is_file()


def test_status_and_stop_find_the_started_broker_by_its_port_alone(tmp_path: Path) -> None:
    port, controller_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if k != "ECASH_KAFKA_BOOTSTRAP_SERVERS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["ECASH_DEVKAFKA_STATE_DIR"] = str(tmp_path / "state")
    record = tmp_path / "state" / f"kafka-{port}.json"
    by_port = ["--runtime", "jvm", "--port", str(port)]
    started = devkafka(
        "start",
        *by_port,
        "--controller-port",
        str(controller_port),
        "--data-dir",
        "elsewhere",
        env=env,
        cwd=tmp_path,
    )
    try:
        assert started.returncode == 0, started.stderr
        assert record.is_file()
        status = devkafka("status", *by_port, env=env, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        assert "running" in status.stderr
        assert str(tmp_path / "elsewhere" / "server.log") in status.stderr
    finally:
        stopped = devkafka("stop", *by_port, env=env, cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stderr
    assert not record.exists()
    assert not (tmp_path / "elsewhere" / "kafka.pid").exists()
    after = devkafka("status", *by_port, env=env, cwd=tmp_path)
    assert after.returncode == 3
    assert "stopped" in after.stderr


def test_status_and_stop_refuse_a_broker_they_did_not_start(
    local_kafka_factory: LocalKafkaFactory, tmp_path: Path
) -> None:
    broker = local_kafka_factory(None)  # started by the tests, not by `ecash-worker kafka start`
    env = {k: v for k, v in os.environ.items() if k != "ECASH_KAFKA_BOOTSTRAP_SERVERS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["ECASH_DEVKAFKA_STATE_DIR"] = str(tmp_path / "state")
    env["ECASH_DEVKAFKA_CACHE_DIR"] = str(tmp_path / "cache")
    by_port = ["--runtime", "jvm", "--port", str(broker.config.port)]
    status = devkafka("status", *by_port, env=env, cwd=tmp_path)
    assert status.returncode == 1
    assert (
        f"a broker answers at {broker.bootstrap}, but not one `ecash-worker kafka start` started"
        in status.stderr
    )
    stopped = devkafka("stop", *by_port, env=env, cwd=tmp_path)
    assert stopped.returncode == 1
    assert "left alone" in stopped.stderr
    assert broker.status().answering  # not stopped


def test_jars_are_fetched_once_and_then_served_from_the_cache_without_maven(tmp_path: Path) -> None:
    config = local_config(os.environ, cache_dir=tmp_path / "cache")
    libs = fetch_jars(config)
    assert (libs / "kafka_2.13-4.1.1.jar").is_file()
    assert (libs / "slf4j-api-2.0.16.jar").is_file()  # slf4j 2: the broker logs through log4j2
    assert not list((tmp_path / "cache").glob("**/libs.partial-*"))

    offline = dataclasses.replace(config, mvn=str(tmp_path / "no-such-mvn"))
    assert fetch_jars(offline) == libs


def test_a_broker_that_dies_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    port, controller_port = free_ports(2)
    config = dataclasses.replace(
        local_config(os.environ, port=port, controller_port=controller_port, data_dir=tmp_path / "kafka"),
        heap="lots",  # the JVM refuses to start
    )
    with pytest.raises(BrokerError, match=r"exited while starting; see .*console\.log") as raised:
        LocalKafka(config).start()
    assert "Invalid maximum heap size" in str(raised.value)
    assert not config.pid_file.exists()
