"""Kafka for scripts that drive the stack: produce commands fast, read a topic to its end, follow results."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ecash_dev.stack.base import StackError
from worker.clock import Clock, SystemClock
from worker.kafka.reading import STALL_TIMEOUT_S, ReadStalled
from worker.kafka.reading import read_to_end as kafka_read_to_end


def command_bytes(message: Mapping[str, Any] | bytes, key: bytes | None = None) -> tuple[bytes, bytes | None]:
    """(value, key) of a command message: a dict is JSON with its MSISDN as key; bytes go as they are."""
    if isinstance(message, bytes):
        return message, key
    msisdn = message.get("msisdn")
    return orjson.dumps(dict(message)), (str(msisdn).encode() if msisdn else key)


class CommandProducer:
    """An idempotent ``acks=all`` producer that rides out a broker restart (``delivery_timeout_s``).

    ``send`` hands a message to the producer's batches and returns at once; ``flush`` waits for every
    message sent so far to be acknowledged (and raises if one failed).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        client_kwargs: Mapping[str, Any] | None = None,
        linger_ms: int = 5,
        delivery_timeout_s: float = 120.0,
    ) -> None:
        self.topic = topic
        self.sent = 0
        self._pending: list[asyncio.Future[Any]] = []
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_batch_size=256 * 1024,
            request_timeout_ms=int(delivery_timeout_s * 1000),
            client_id="ecash-stack-producer",
            **dict(client_kwargs or {}),
        )

    async def __aenter__(self) -> Self:
        await self._producer.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                await self.flush()
        finally:
            await self._producer.stop()

    async def send(self, message: Mapping[str, Any] | bytes, key: bytes | None = None) -> None:
        value, msg_key = command_bytes(message, key)
        self._pending.append(await self._producer.send(self.topic, value=value, key=msg_key))
        self.sent += 1

    async def send_many(self, messages: Iterable[Mapping[str, Any] | bytes], key: bytes | None = None) -> int:
        """Send and flush; returns how many were sent."""
        count = 0
        for message in messages:
            await self.send(message, key)
            count += 1
        await self.flush()
        return count

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)


async def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[Mapping[str, Any] | bytes],
    *,
    key: bytes | None = None,
    client_kwargs: Mapping[str, Any] | None = None,
) -> int:
    """Send every message (dicts as JSON keyed by MSISDN, bytes as they are with ``key``); wait for acks."""
    async with CommandProducer(bootstrap, topic, client_kwargs=client_kwargs) as producer:
        return await producer.send_many(messages, key)


@dataclass(frozen=True)
class TopicRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None

    def json(self) -> Any:
        return orjson.loads(self.value) if self.value is not None else None


async def read_to_end(
    bootstrap: str,
    topic: str,
    *,
    client_kwargs: Mapping[str, Any] | None = None,
    stall_timeout_s: float = STALL_TIMEOUT_S,
    clock: Clock | None = None,
) -> list[TopicRecord]:
    """Every committed record of ``topic``, from the beginning to the end offsets taken when the read starts.

    ``worker.kafka.reading.read_to_end``'s stop rule: no overall deadline, but a read that stops moving for
    ``stall_timeout_s`` fails. Raises ``StackError`` if the topic does not exist or the read stalls.
    """
    partitions = [TopicPartition(topic, p) for p in await partition_ids(bootstrap, topic, client_kwargs)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="ecash-stack-reader",
        isolation_level="read_committed",  # what the workers committed, as a consumer must read
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **dict(client_kwargs or {}),
    )
    records: list[TopicRecord] = []

    def keep(m: Any) -> None:
        records.append(TopicRecord(m.partition, m.offset, m.key, m.value, m.timestamp))

    await consumer.start()
    try:
        await kafka_read_to_end(
            consumer, partitions, keep, stall_timeout_s=stall_timeout_s, clock=clock, max_records=10_000
        )
    except ReadStalled as exc:
        raise StackError(str(exc)) from exc
    finally:
        await consumer.stop()
    return records


async def partition_ids(
    bootstrap: str, topic: str, client_kwargs: Mapping[str, Any] | None = None
) -> list[int]:
    """The partition numbers of ``topic``; ``StackError`` if it does not exist (it is never created:
    only a listed topic is described, so a cluster that auto-creates topics does not make it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **dict(client_kwargs or {}))
    try:
        await admin.start()
        described = await admin.describe_topics([topic]) if topic in await admin.list_topics() else []
    finally:
        await admin.close()
    for entry in described:
        if entry["topic"] == topic and entry["error_code"] == 0 and entry["partitions"]:
            return sorted(int(p["partition"]) for p in entry["partitions"])
    raise StackError(f"topic {topic} does not exist")


class ResultTail:
    """Follows a results topic from its beginning in the background: which trace numbers are answered.

    ``results`` maps trace number -> event id -> result (JSON). Survives a broker restart (the consumer
    reconnects by itself). Use ``async with`` or ``start``/``stop``.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        client_kwargs: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self._client_kwargs = dict(client_kwargs or {})
        self.results: dict[str, dict[str, dict[str, Any]]] = {}
        self.records = 0
        self._clock: Clock = clock or SystemClock()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        ids = await partition_ids(self._bootstrap, self.topic, self._client_kwargs)
        tps = [TopicPartition(self.topic, p) for p in ids]
        self._consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="ecash-stack-tail",
            isolation_level="read_committed",
            **self._client_kwargs,
        )
        await consumer.start()
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._follow(consumer), name=f"tail-{self.topic}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def answered(self, traces: Iterable[str]) -> int:
        """How many of ``traces`` have at least one result."""
        return sum(1 for trace in traces if trace in self.results)

    async def wait_for(self, traces: Iterable[str], timeout_s: float) -> bool:
        """True once every one of ``traces`` has a result; False when ``timeout_s`` passes first."""
        wanted = set(traces)
        deadline_s = self._clock.monotonic_s() + timeout_s
        while not wanted <= self.results.keys():
            if self._clock.monotonic_s() >= deadline_s:
                return False
            await self._clock.sleep_s(0.1)
        return True

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            except KafkaError:
                await self._clock.sleep_s(0.5)
                continue
            for messages in batch.values():
                for message in messages:
                    self._add(message.value)

    def _add(self, value: bytes | None) -> None:
        self.records += 1
        try:
            result = orjson.loads(value or b"null")
            trace, event_id = str(result["trace_number"]), str(result["event_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        self.results.setdefault(trace, {})[event_id] = result
