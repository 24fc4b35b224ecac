"""A small typed client for the teams that send commands from Python: ``send`` and ``send_and_wait``.

    from worker.client import CommandClient, Topics
    from worker.contracts import Command

    async with CommandClient("kafka:9092", topics=Topics(), client_kwargs={}) as client:
        command = Command(type="charge", trace_number="T20261125A", msisdn="08131234567", amount="100000")
        answer = await client.send_and_wait(command, timeout_s=60)
        if answer.result is not None:
            print(answer.result.outcome)       # succeeded, declined, failed, rejected or unresolved

It follows the rules of docs/contracts.md: the record key is the MSISDN as UTF-8 and aiokafka's default
partitioner is Kafka's murmur2 (where Java puts it); the value is the command's JSON without null fields;
the result is matched **by trace number**, read ``read_committed``, among the results published after
the command was produced (the results and dead-letter topics' end offsets are taken before it is sent, so
an older result for the same trace number is never taken for this one's); a dead letter of this very
message (``topic``, ``partition``, ``offset``) ends the wait too. An ``unresolved`` result is interim: an
operator closes it later with one more result (``wait_for_final`` waits for that one too).

One producer (idempotent, ``acks=all``) serves every call, for the client's life; each ``send_and_wait``
reads with a consumer of its own (no group, nothing committed), so calls may run concurrently. Nothing
of the worker's ``Settings`` is needed: the bootstrap servers, the topics and the Kafka client options
(TLS, SASL) as ``worker.kafka.admin.kafka_client_kwargs`` builds them (``from_settings`` does it from a
worker's settings).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from worker.clock import Clock, SystemClock
from worker.contracts import Command, DeadLetter, Outcome, Result
from worker.kafka import clients

if TYPE_CHECKING:
    from worker.settings import Settings

__all__ = [
    "Answer",
    "ClientError",
    "CommandClient",
    "Sent",
    "TopicMissing",
    "Topics",
    "parse_dead_letter",
    "parse_result",
]

_POLL_MS = 200


class ClientError(Exception):
    """The client cannot do what was asked (a topic missing, the client not started)."""


class TopicMissing(ClientError):
    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic} does not exist")
        self.topic = topic


@dataclass(frozen=True)
class Topics:
    commands: str = "ecash.commands"
    results: str = "ecash.results"
    dead_letters: str = "ecash.commands.dlq"


@dataclass(frozen=True)
class Sent:
    """Where the command landed."""

    trace_number: str
    topic: str
    partition: int
    offset: int

    def is_for_this(self, letter: DeadLetter) -> bool:
        return (letter.topic, letter.partition, letter.offset) == (self.topic, self.partition, self.offset)


@dataclass(frozen=True)
class Answer:
    """What the command caused within the wait: its result, or the dead letter the worker wrote for it
    instead, or neither (no answer yet: its result will still come; never resend it under a new trace
    number). ``interim`` holds the ``unresolved`` result when ``wait_for_final`` waited past it."""

    sent: Sent
    result: Result | None = None
    dead_letter: DeadLetter | None = None
    interim: Result | None = None

    @property
    def answered(self) -> bool:
        return self.result is not None or self.dead_letter is not None


class CommandClient:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topics: Topics | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        client_id: str = "ecash-client",
        clock: Clock | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics or Topics()
        self._kwargs = dict(client_kwargs or {})
        self._client_id = client_id
        self._clock = clock or SystemClock()
        self._producer: AIOKafkaProducer | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, client_id: str = "ecash-client") -> CommandClient:
        """The worker's own topics and Kafka options (TLS, SASL), from its settings."""
        from worker.kafka.admin import kafka_client_kwargs

        return cls(
            settings.kafka_bootstrap_servers,
            topics=Topics(settings.commands_topic, settings.results_topic, settings.dlq_topic),
            client_kwargs=kafka_client_kwargs(settings),
            client_id=client_id,
        )

    # --- life --------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._producer is not None:
            return
        producer = clients.client_producer(self.bootstrap_servers, self._kwargs, client_id=self._client_id)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> CommandClient:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- sending -----------------------------------------------------------------------------------
    async def send(self, command: Command) -> Sent:
        """Produce ``command`` keyed by its MSISDN (acks=all); where it landed."""
        if self._producer is None:
            raise ClientError("the client is not started (use `async with` or start())")
        meta = await self._producer.send_and_wait(
            self.topics.commands,
            key=command.msisdn.encode(),
            value=command.model_dump_json(exclude_none=True).encode(),
        )
        return Sent(command.trace_number, self.topics.commands, int(meta.partition), int(meta.offset))

    async def send_and_wait(
        self,
        command: Command,
        timeout_s: float,
        *,
        wait_for_final: bool = False,
        on_wait: Callable[[float], None] | None = None,
    ) -> Answer:
        """Send ``command`` and wait up to ``timeout_s`` for its result (the first one with its trace number,
        published after it was sent) or its dead letter. With ``wait_for_final``, an ``unresolved`` result
        is kept as ``interim`` and the wait goes on for the final one (an operator's decision).
        ``on_wait`` is told the seconds waited so far, about 5 times a second."""
        consumer = clients.client_reader(
            self.bootstrap_servers, self._kwargs, client_id=f"{self._client_id}-reader"
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer, [self.topics.results, self.topics.dead_letters])
            starts = await consumer.end_offsets(partitions)
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, starts[tp])
            sent = await self.send(command)
            return await self._wait(consumer, sent, timeout_s, wait_for_final, on_wait)
        finally:
            await consumer.stop()

    async def _wait(
        self,
        consumer: AIOKafkaConsumer,
        sent: Sent,
        timeout_s: float,
        wait_for_final: bool,
        on_wait: Callable[[float], None] | None,
    ) -> Answer:
        started_s = self._clock.monotonic_s()
        interim: Result | None = None
        while (waited_s := self._clock.monotonic_s() - started_s) < timeout_s:
            if on_wait is not None:
                on_wait(waited_s)
            remaining_ms = max(1, int((timeout_s - waited_s) * 1000))
            batch = await consumer.getmany(timeout_ms=min(_POLL_MS, remaining_ms))
            for message in (m for messages in batch.values() for m in messages):
                if message.topic == self.topics.results:
                    result = parse_result(message.value)
                    if result is None or result.trace_number != sent.trace_number:
                        continue
                    if wait_for_final and result.outcome is Outcome.UNRESOLVED:
                        interim = interim or result
                        continue
                    return Answer(sent, result=result, interim=interim)
                letter = parse_dead_letter(message.value)
                if letter is not None and sent.is_for_this(letter):
                    return Answer(sent, dead_letter=letter, interim=interim)
        return Answer(sent, interim=interim)

    @staticmethod
    async def _partitions(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
        # One metadata request for every topic (no topic is auto-created by it). The consumer's public
        # topics() makes the same request but keeps only the names; aiokafka 0.14 is pinned.
        cluster = await consumer._client.fetch_all_metadata()
        out: list[TopicPartition] = []
        for topic in topics:
            partitions = cluster.partitions_for_topic(topic)
            if not partitions:
                raise TopicMissing(topic)
            out.extend(TopicPartition(topic, partition) for partition in sorted(partitions))
        return out


def parse_result(value: bytes | None) -> Result | None:
    """A result, or None for anything else on the topic (never raises; unknown fields are ignored)."""
    if value is None:
        return None
    try:
        return Result.model_validate_json(value)
    except ValidationError:
        return None


def parse_dead_letter(value: bytes | None) -> DeadLetter | None:
    if value is None:
        return None
    try:
        return DeadLetter.model_validate_json(value)
    except ValidationError:
        return None
