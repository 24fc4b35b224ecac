"""Reading the worker's topics for the operator's commands: a topic's partitions, and a topic to its end."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from worker.clock import Clock
from worker.kafka import clients
from worker.kafka.admin import kafka_client_kwargs
from worker.kafka.reading import STALL_TIMEOUT_S, ReadStalled, read_to_end
from worker.ops.command import EXIT_CONFIG, EXIT_UNREACHABLE, OpsError
from worker.ops.output import Progress
from worker.settings import Settings

__all__ = ["CLIENT_ID", "kafka_consumer", "read_topic", "stream_topic", "topic_partitions", "unreachable"]

T = TypeVar("T")

CLIENT_ID = "ecash-worker-ops"


def unreachable(settings: Settings, exc: BaseException) -> OpsError:
    return OpsError(
        f"Kafka at {settings.kafka_bootstrap_servers} did not answer ({type(exc).__name__}: {exc})",
        EXIT_UNREACHABLE,
    )


@contextlib.asynccontextmanager
async def kafka_consumer(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer without a group (it assigns partitions itself and commits nothing)."""
    consumer = clients.reader_consumer(settings, kafka_client_kwargs(settings), client_id=CLIENT_ID)
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise unreachable(settings, exc) from None
    try:
        yield consumer
    finally:
        await consumer.stop()


async def topic_partitions(settings: Settings, topic: str, setting: str) -> list[TopicPartition]:
    """Every partition of ``topic``; a topic that does not exist is a configuration error.

    Asked of the admin API (a consumer only learns a topic's partitions once it uses it); only an
    existing topic is described, so a cluster that auto-creates topics does not create it."""
    admin = clients.admin_client(settings, kafka_client_kwargs(settings), client_id=CLIENT_ID)
    try:
        await admin.start()
        if topic not in await admin.list_topics():
            raise OpsError(
                f"topic {topic} does not exist ({setting}): is this the worker's configuration?", EXIT_CONFIG
            )
        described = await admin.describe_topics([topic])
    except KafkaError as exc:
        raise unreachable(settings, exc) from None
    finally:
        await admin.close()
    partitions = sorted(p["partition"] for t in described if t["topic"] == topic for p in t["partitions"])
    return [TopicPartition(topic, partition) for partition in partitions]


async def stream_topic(
    settings: Settings,
    topic: str,
    setting: str,
    handle: Callable[[Any], None],
    *,
    progress: Progress | None = None,
    clock: Clock | None = None,
) -> int:
    """Hand every record of ``topic`` up to the end offsets taken when the read starts (``read_to_end``'s
    stop rule) to ``handle`` as it arrives, keeping none; return how many. A read that stalls for
    ``STALL_TIMEOUT_S`` is an unreachable cluster (exit 3)."""
    partitions = await topic_partitions(settings, topic, setting)
    async with kafka_consumer(settings) as consumer:
        try:
            return await read_to_end(
                consumer,
                partitions,
                handle,
                stall_timeout_s=STALL_TIMEOUT_S,
                clock=clock,
                on_progress=None if progress is None else progress.update,
            )
        except ReadStalled as exc:
            raise OpsError(str(exc), EXIT_UNREACHABLE) from None


async def read_topic(
    settings: Settings,
    topic: str,
    setting: str,
    decode: Callable[[Any], T],
    *,
    progress: Progress | None = None,
    clock: Clock | None = None,
) -> list[T]:
    """Every record of ``topic`` (``stream_topic``), each turned into what the caller keeps
    (``decode(record)``), so a large topic is not held as raw bytes."""
    decoded: list[T] = []
    await stream_topic(
        settings,
        topic,
        setting,
        lambda record: decoded.append(decode(record)),
        progress=progress,
        clock=clock,
    )
    return decoded
