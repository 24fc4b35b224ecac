"""Fixtures for tests against a real Kafka broker: imported by the conftest of each directory that needs
them (tests/integration, tests/perf), never by the unit tests (they need no broker and no ecash_dev).

- ``kafka_bootstrap`` (session): ``$ECASH_TEST_KAFKA_BOOTSTRAP`` if set, else a JVM broker started on free
  ports in a temporary data dir (never the demo's 19092), stopped when the session ends. One broker for
  the session, however many conftests import the fixture (each import is a fixture of its own to pytest).
- ``kafka_topics`` (function): topic names unique to the test, and a way to create them.
- ``local_kafka_factory`` (function): brokers of the test's own (for restart and crash scenarios),
  stopped at the end of the test.
- ``holding_consumer``: a ``read_committed`` consumer whose fetches the broker holds long while nothing is
  new, so that a test can tell waiting out a held fetch from not waiting at all.

The first run fetches Kafka's jars with Maven (cached in ~/.cache/ecash-worker); later starts take seconds.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from ecash_dev.kafka import LocalKafka, LocalKafkaConfig, default_cache_dir, free_ports
from worker.kafka.admin import ClientKwargs, TopicSpec, ensure_topics

TEST_BOOTSTRAP_ENV = "ECASH_TEST_KAFKA_BOOTSTRAP"
HELD_FETCH_MS = 20_000
MAX_PREFIX_CHARS = 60


def start_test_broker(
    data_dir: Path,
    environ: Mapping[str, str] | None = None,
    properties: Mapping[str, str] | None = None,
    ports: tuple[int, int] | None = None,
) -> LocalKafka:
    """A JVM broker on two free loopback ports (or ``ports``: client, controller), data in ``data_dir``;
    started and answering.

    ``properties`` override the broker's generated ``server.properties``.
    """
    env = os.environ if environ is None else environ
    port, controller_port = ports or free_ports(2)
    config = LocalKafkaConfig(
        data_dir=data_dir,
        cache_dir=default_cache_dir(env),
        port=port,
        controller_port=controller_port,
        extra_properties=dict(properties or {}),
    )
    broker = LocalKafka(config, java_home=env.get("JAVA_HOME"))
    broker.start()
    return broker


@dataclass
class _SessionBroker:
    """The session's broker, shared by every directory's ``kafka_bootstrap``; stopped by the last user."""

    broker: LocalKafka | None = None
    users: int = 0


_SESSION_BROKER = _SessionBroker()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get(TEST_BOOTSTRAP_ENV, "").strip()
    if external:
        yield external
        return
    shared = _SESSION_BROKER
    if shared.broker is None:
        shared.broker = start_test_broker(tmp_path_factory.mktemp("kafka"))
    shared.users += 1
    try:
        yield shared.broker.bootstrap
    finally:
        shared.users -= 1
        if shared.users == 0:
            shared.broker.stop()
            shared.broker = None


@dataclass
class KafkaTopics:
    """Topic names that no other test uses: ``<test name>-<random>.<suffix>``."""

    bootstrap: str
    prefix: str
    client_kwargs: ClientKwargs = field(default_factory=dict)

    def name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    async def create(
        self, suffix: str, *, partitions: int = 1, configs: Mapping[str, str] | None = None
    ) -> str:
        """Create ``name(suffix)`` (waits until every partition has a leader); returns its name."""
        topic = self.name(suffix)
        await self.create_specs([TopicSpec(topic, partitions, 1, dict(configs or {}))])
        return topic

    async def create_specs(self, specs: list[TopicSpec]) -> None:
        await ensure_topics(self.bootstrap, specs, client_kwargs=self.client_kwargs)


def unique_prefix(test_name: str) -> str:
    """A legal topic-name prefix from a test's name, made unique (topic names: [a-zA-Z0-9._-])."""
    stem = re.sub(r"[^a-zA-Z0-9_-]+", "-", test_name).strip("-")[:MAX_PREFIX_CHARS]
    return f"{stem or 'test'}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kafka_topics(kafka_bootstrap: str, request: pytest.FixtureRequest) -> KafkaTopics:
    return KafkaTopics(kafka_bootstrap, unique_prefix(request.node.name))


LocalKafkaFactory = Callable[[Mapping[str, str] | None], LocalKafka]


@pytest.fixture
def local_kafka_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaFactory]:
    """Start brokers of the test's own (restart, crash, data-survival scenarios); all stopped afterwards.

    ``local_kafka_factory(None)``, or with properties to override: ``{"auto.create.topics.enable": "true"}``.
    """
    started: list[LocalKafka] = []

    def start(properties: Mapping[str, str] | None = None) -> LocalKafka:
        broker = start_test_broker(tmp_path_factory.mktemp("own-kafka"), properties=properties)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


def holding_consumer(bootstrap: str, held_ms: int = HELD_FETCH_MS) -> AIOKafkaConsumer:
    """No group, ``read_committed``, from the log start; the broker holds a fetch with nothing to return
    for ``held_ms``."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=held_ms,
    )
