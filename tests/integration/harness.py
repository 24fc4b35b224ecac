"""Helpers for pipeline tests: a worker against real Kafka and the sandbox over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ecash_dev import stack
from ecash_dev.stack import WorkerProcess as WorkerProcess
from ecash_dev.stack import namespaced  # re-exported for tests
from ecash_dev.stack import settings_env as settings_env
from worker.kafka.admin import ensure_topics, worker_topic_specs
from worker.service import Worker
from worker.settings import SANDBOX_API_IDENTITY, Settings, load_settings


def fast_settings(
    bootstrap: str, api_base_url: str, prefix: str, state_dir: Path, **overrides: Any
) -> Settings:
    """Settings for tests: unique topics and group, short timeouts, schedules in fractions of a second."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        **namespaced(prefix, 4),
        "api_base_url": api_base_url,
        **SANDBOX_API_IDENTITY,
        "request_timeout_s": 1.0,
        "connect_timeout_s": 0.5,
        "resolution_grace_s": 0.2,
        "resolution_schedule_s": [0.3, 0.5],
        "resolution_deadline_s": 6.0,
        "not_sent_backoff_initial_s": 0.05,
        "not_sent_backoff_max_s": 0.2,
        "commit_interval_s": 0.2,
        "kafka_session_timeout_s": 6.0,
        "kafka_rebalance_timeout_s": 10.0,
        "drain_timeout_s": 3.0,
        "metrics_port": 0,
        "state_dir": state_dir,
        "max_in_flight": 64,
        "max_buffered": 512,
    }
    values.update(overrides)
    return load_settings(**values)


async def create_topics(settings: Settings) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, worker_topic_specs(settings), client_kwargs={})


def command(
    trace: str, msisdn: str, amount: int | str = 1000, kind: str = "charge", **extra: Any
) -> dict[str, Any]:
    return {"type": kind, "trace_number": trace, "msisdn": msisdn, "amount": str(amount), **extra}


async def produce(
    settings: Settings, messages: Iterable[dict[str, Any] | bytes], key: bytes | None = None
) -> int:
    return await stack.produce(settings.kafka_bootstrap_servers, settings.commands_topic, messages, key=key)


async def produce_at(
    settings: Settings,
    message: dict[str, Any] | bytes,
    *,
    partition: int | None,
    key: bytes | None = None,
    topic: str | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> int:
    """One message to one partition (the commands topic by default), keyed by its MSISDN unless ``key``
    is given (``b""`` for none); returns its offset."""
    value = message if isinstance(message, bytes) else orjson.dumps(message)
    if key is None and isinstance(message, dict) and message.get("msisdn"):
        key = str(message["msisdn"]).encode()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(
            topic or settings.commands_topic,
            value=value,
            key=key or None,
            partition=partition,
            headers=headers,
        )
    finally:
        await producer.stop()
    return int(meta.offset)


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    partitions: int,
    until: int,
    timeout_s: float,
    headers: list[dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Read a topic from the beginning until ``until`` messages arrived or time ran out (and each one's
    headers into ``headers``, in the same order, when given)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while len(out) < until and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for messages in batch.values():
                out.extend(orjson.loads(m.value) for m in messages)
                if headers is not None:
                    headers.extend({name: value.decode() for name, value in m.headers} for m in messages)
    finally:
        await consumer.stop()
    return out


@dataclass
class Results:
    events: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # event_id -> its record's headers

    def by_trace(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for event in self.events:
            out.setdefault(event["trace_number"], []).append(event)
        return out

    def distinct(self) -> dict[str, dict[str, Any]]:
        """event_id -> event (a republished result has the same id)."""
        return {event["event_id"]: event for event in self.events}

    def records_per_trace(self) -> dict[str, int]:
        """How many result records each trace number has (exactly-once: one each, even after a crash)."""
        return {trace: len(events) for trace, events in self.by_trace().items()}

    def outcome_of(self, trace: str) -> str:
        outcomes = {e["outcome"] for e in self.events if e["trace_number"] == trace}
        assert len(outcomes) == 1, f"{trace}: {outcomes}"
        return str(outcomes.pop())


async def wait_results(settings: Settings, traces: set[str], timeout_s: float = 60.0) -> Results:
    """Read results until every trace number has at least one, or time runs out.

    As a consumer must (docs/contracts.md): ``read_committed``, so only results of committed transactions.
    """
    deadline = time.monotonic() + timeout_s
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None, isolation_level="read_committed"
    )
    await consumer.start()
    results = Results()
    try:
        tps = [TopicPartition(settings.results_topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen: set[str] = set()
        while time.monotonic() < deadline and not traces <= seen:
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for messages in batch.values():
                for message in messages:
                    event = orjson.loads(message.value)
                    results.events.append(event)
                    results.headers[event["event_id"]] = {n: v.decode() for n, v in message.headers}
                    seen.add(event["trace_number"])
        # a little longer, to catch duplicates that should not be there
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            batch = await consumer.getmany(timeout_ms=100, max_records=10_000)
            for messages in batch.values():
                results.events.extend(orjson.loads(m.value) for m in messages)
    finally:
        await consumer.stop()
    missing = traces - {e["trace_number"] for e in results.events}
    assert not missing, f"{len(missing)} commands without a result, e.g. {sorted(missing)[:5]}"
    return results


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Worker]:
    worker = Worker(settings, serve_health=False)
    task = asyncio.create_task(worker.run(), name="worker-under-test")
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)


def ledger_count(executions: Iterable[Any], trace: str) -> int:
    return sum(1 for e in executions if e.trace_number == trace)


def money(value: str | int) -> Decimal:
    return Decimal(str(value))


async def eventually(predicate: Any, *, timeout_s: float, poll_s: float = 0.02) -> None:
    """Wait until ``predicate()`` is true; fail the test if it is not within the time."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / poll_s) + 1):
        if predicate():
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(poll_s)
    raise AssertionError(f"condition not met within {timeout_s} s")
