"""The operator's commands (``ecash-worker api | send | review | reconcile``) and what they share.

Every command reads the worker's own settings (``ECASH_*``, ``worker.settings.load_settings``), so it talks
to the same Kafka topics and the same E-Cash host as the worker it serves. Exit codes mean the same thing
in every command:

- 0: done; the answer is the good one (PROCESSED, succeeded, all agree).
- 1: answered, but not the good answer (another response code, declined/failed/rejected, a disagreement).
- 2: configuration or usage error (a bad ``ECASH_*`` value, a missing topic, an invalid argument).
- 3: unreachable (the E-Cash API or the Kafka cluster did not answer).
- 4: ``send``: the command ended ``unresolved`` (handed to manual review).
- 5: ``send`` / ``review resolve``: no result arrived within the wait.

``send`` and ``review resolve`` also watch the dead-letter topic: if the worker dead-letters the very
message they produced, they say why at once (exit 1) instead of waiting in vain.

This module holds the Kafka plumbing the commands share: read a topic to its end, produce one message
and wait for the result it causes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, TextIO, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from worker.amount_rules import command_amount
from worker.clock import Clock, SystemClock
from worker.contracts import DeadLetter, Result
from worker.kafka import clients
from worker.kafka.admin import kafka_client_kwargs
from worker.kafka.reading import STALL_TIMEOUT_S, ReadStalled, read_to_end
from worker.ops.output import Console, Progress, choose_format
from worker.settings import Settings, SettingsError, load_settings, load_settings_without_api

T = TypeVar("T")

EXIT_OK = 0
EXIT_NOT_OK = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3
EXIT_UNRESOLVED = 4
EXIT_NO_RESULT = 5

CLIENT_ID = "ecash-worker-ops"
_POLL_MS = 200


class OpsError(Exception):
    """A command cannot go on: the message is for the operator, ``exit_code`` for the shell."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def invalid(what: str, exc: ValidationError) -> OpsError:
    """``invalid command: msisdn: String should match pattern ...`` (exit 2). Values are not echoed."""
    reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}" for e in exc.errors())
    return OpsError(f"invalid {what}: {reasons}", EXIT_CONFIG)


def ops_settings(needs_api: bool = True) -> Settings:
    """The worker's settings from the environment; a bad value is a configuration error (exit 2).
    Without ``needs_api`` (the command only talks to Kafka) the API identity is not required."""
    try:
        return load_settings() if needs_api else load_settings_without_api()
    except SettingsError as exc:
        raise OpsError(str(exc), EXIT_CONFIG) from None


# --- argument types (argparse type=) -------------------------------------------------------------------


def day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date as YYYY-MM-DD") from None


def amount(text: str) -> Decimal:
    """An amount as typed (``100000``, ``1500.50``), by the commands' rules (``worker.amount_rules``).

    Anything else is a one-line usage error (exit 2): ``'1e400' is not an amount: ...``."""
    try:
        return command_amount(text)
    except PydanticCustomError as exc:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise argparse.ArgumentTypeError(f"{shown!r} is not an amount: {exc.message()}") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def page_number(text: str) -> int:
    """A page index, counted from 0 as in the spec's example."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a page number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("pages are counted from 0")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


Body = Callable[[Settings, Console], Coroutine[Any, Any, int]]


def run_command(
    name: str,
    args: argparse.Namespace,
    body: Body,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    needs_api: bool = True,
) -> int:
    """Load the settings, run ``body`` in a fresh event loop, turn an ``OpsError`` into its exit code."""
    console = Console(
        choose_format(getattr(args, "output", None), out or sys.stdout), out or sys.stdout, err or sys.stderr
    )
    quiet_kafka_logs()
    try:
        settings = ops_settings(needs_api)
        return asyncio.run(body(settings, console))
    except OpsError as exc:
        console.note(f"ecash-worker {name}: {exc}")
        return exc.exit_code
    except KafkaError as exc:  # the cluster went away in the middle of the command
        console.note(f"ecash-worker {name}: Kafka stopped answering ({type(exc).__name__}: {exc})")
        return EXIT_UNREACHABLE


def quiet_kafka_logs() -> None:
    """aiokafka logs connection failures itself; the commands say it once, in their own words. (Records
    still propagate to handlers a host process configured; only Python's last-resort stderr is avoided.)"""
    logger = logging.getLogger("aiokafka")
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _unreachable(settings: Settings, exc: BaseException) -> OpsError:
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
        raise _unreachable(settings, exc) from None
    try:
        yield consumer
    finally:
        await consumer.stop()


async def topic_partitions(settings: Settings, topic: str, setting: str) -> list[TopicPartition]:
    """Every partition of ``topic``; a topic that does not exist is a configuration error.

    Asked of the admin API (a consumer only learns a topic's partitions once it uses it); only an
    existing topic is described, so a cluster that auto-creates topics does not create it."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=CLIENT_ID,
        **kafka_client_kwargs(settings),
    )
    try:
        await admin.start()
        if topic not in await admin.list_topics():
            raise OpsError(
                f"topic {topic} does not exist ({setting}): is this the worker's configuration?", EXIT_CONFIG
            )
        described = await admin.describe_topics([topic])
    except KafkaError as exc:
        raise _unreachable(settings, exc) from None
    finally:
        await admin.close()
    partitions = sorted(p["partition"] for t in described if t["topic"] == topic for p in t["partitions"])
    return [TopicPartition(topic, partition) for partition in partitions]


async def read_topic(
    settings: Settings,
    topic: str,
    setting: str,
    decode: Callable[[Any], T],
    *,
    progress: Progress | None = None,
    clock: Clock | None = None,
) -> list[T]:
    """Every record of ``topic`` up to the end offsets taken when the read starts (``read_to_end``'s stop
    rule), each turned into what the caller keeps (``decode(record)``), so a large topic is not held as raw
    bytes. A read that stalls for ``STALL_TIMEOUT_S`` is an unreachable cluster (exit 3)."""
    partitions = await topic_partitions(settings, topic, setting)
    decoded: list[T] = []
    async with kafka_consumer(settings) as consumer:
        try:
            await read_to_end(
                consumer,
                partitions,
                lambda record: decoded.append(decode(record)),
                stall_timeout_s=STALL_TIMEOUT_S,
                clock=clock,
                on_progress=None if progress is None else progress.update,
            )
        except ReadStalled as exc:
            raise OpsError(str(exc), EXIT_UNREACHABLE) from None
    return decoded


def parse_result(value: bytes | None) -> Result | None:
    """A result event, or None for anything else on the topic (never raises)."""
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
        raise _unreachable(settings, exc) from None
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
