"""Produce one message and wait for what it causes: its result, or the dead letter the worker wrote for it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from worker.client import parse_dead_letter as parse_dead_letter  # re-exported: ops read them here
from worker.client import parse_result as parse_result
from worker.clock import Clock, SystemClock
from worker.contracts import DeadLetter, Result
from worker.kafka import clients
from worker.kafka.admin import kafka_client_kwargs
from worker.ops.output import Progress
from worker.ops.reading import CLIENT_ID, kafka_consumer, topic_partitions, unreachable
from worker.settings import Settings

__all__ = ["Delivery", "produce_and_await_result"]

_POLL_MS = 200


@dataclass(frozen=True)
class Delivery:
    """Where the produced message landed, and what it caused within the wait: its result, or the dead
    letter the worker wrote for it instead (both None: nothing yet)."""

    topic: str
    partition: int
    offset: int
    result: Result | None = None
    dead_letter: DeadLetter | None = None

    def is_for_this(self, letter: DeadLetter) -> bool:
        return (letter.topic, letter.partition, letter.offset) == (self.topic, self.partition, self.offset)


async def produce_and_await_result(
    settings: Settings,
    *,
    key: bytes,
    value: bytes,
    matches: Callable[[Result], bool],
    wait_s: float | None,
    progress: Progress | None = None,
    clock: Clock | None = None,
    topic: tuple[str, str] | None = None,
    partition: int | None = None,
) -> Delivery:
    """Produce ``value`` to ``topic`` (name, setting; the commands topic by default) (``acks=all``) and
    wait up to ``wait_s`` for the first result that ``matches``, or the dead letter of this very message.
    The end offsets of the results and dead-letter topics are taken before producing, so nothing
    published earlier (a result for the same trace number) is taken for this message's."""
    clock = clock or SystemClock()
    name, setting = topic or (settings.commands_topic, "ECASH_COMMANDS_TOPIC")
    await topic_partitions(settings, name, setting)
    partitions = await topic_partitions(settings, settings.results_topic, "ECASH_RESULTS_TOPIC")
    partitions += await topic_partitions(settings, settings.dlq_topic, "ECASH_DLQ_TOPIC")
    async with kafka_consumer(settings) as consumer:
        starts: Mapping[TopicPartition, int] = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        sent = await _produce(settings, name, key, value, partition)
        if wait_s is None:
            return sent
        return await _await_outcome(consumer, settings.results_topic, matches, sent, wait_s, progress, clock)


async def _produce(
    settings: Settings, topic: str, key: bytes, value: bytes, partition: int | None = None
) -> Delivery:
    producer = clients.acks_all_producer(settings, kafka_client_kwargs(settings), client_id=CLIENT_ID)
    try:
        await producer.start()
        meta = await producer.send_and_wait(topic, value=value, key=key, partition=partition)
    except KafkaError as exc:
        raise unreachable(settings, exc) from None
    finally:
        await producer.stop()
    return Delivery(topic, int(meta.partition), int(meta.offset))


async def _await_outcome(
    consumer: AIOKafkaConsumer,
    results_topic: str,
    matches: Callable[[Result], bool],
    sent: Delivery,
    wait_s: float,
    progress: Progress | None,
    clock: Clock,
) -> Delivery:
    started_s = clock.monotonic_s()
    while (waited_s := clock.monotonic_s() - started_s) < wait_s:
        if progress is not None:
            progress.update(int(waited_s))
        remaining_ms = max(1, int((wait_s - waited_s) * 1000))
        batch = await consumer.getmany(timeout_ms=min(_POLL_MS, remaining_ms))
        for message in (m for messages in batch.values() for m in messages):
            if message.topic == results_topic:
                result = parse_result(message.value)
                if result is not None and matches(result):
                    return dataclasses.replace(sent, result=result)
            elif (letter := parse_dead_letter(message.value)) is not None and sent.is_for_this(letter):
                return dataclasses.replace(sent, dead_letter=letter)
    return sent
