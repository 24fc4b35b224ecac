"""What every broker runtime shares: the error, the status, the protocol, and the readiness probe."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from worker.clock import Clock
from worker.kafka.admin import ClientKwargs, broker_answers

KAFKA_VERSION = "4.1.1"  # keep in step with deploy/kafka/pom.xml
DEFAULT_PORT = 19092
DOCKER_IMAGE = f"apache/kafka:{KAFKA_VERSION}"

# Every runtime's broker (JVM or container) is one KRaft node configured with these, plus its listeners.
SINGLE_NODE_PROPERTIES: dict[str, str] = {
    # One node: every replication factor is 1. The worker creates its topics itself.
    "auto.create.topics.enable": "false",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "6",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "6",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    # Quick to join, start and stop.
    "group.initial.rebalance.delay.ms": "0",
    "broker.heartbeat.interval.ms": "500",
    # After a crash the new incarnation waits for the old one's session to expire (default 9 s).
    "broker.session.timeout.ms": "3000",
    "num.recovery.threads.per.data.dir": "2",
    # Small: a 512 MiB heap has no room for the default 128 MiB cleaner buffer.
    "num.network.threads": "2",
    "num.io.threads": "4",
    "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
}

T = TypeVar("T")
Report = Callable[[str], None]


def silent(_: str) -> None:
    """The default progress reporter: say nothing."""


class BrokerError(Exception):
    """The broker could not be fetched, started, stopped or reached; the message says where to look."""


@dataclass(frozen=True)
class BrokerStatus:
    kind: str  # jvm | docker | external
    bootstrap: str
    running: bool  # the process (or container) exists
    answering: bool  # it answers a metadata request
    pid: int | None = None
    log_file: Path | None = None

    def describe(self) -> str:
        if self.answering:
            state = "running"
        elif self.running:
            state = "starting or unhealthy"
        else:
            state = "stopped"
        where = f" pid {self.pid}" if self.pid else ""
        log = f", log {self.log_file}" if self.log_file else ""
        return f"kafka ({self.kind}{where}) at {self.bootstrap}: {state}{log}"


class Broker(Protocol):
    @property
    def bootstrap(self) -> str: ...

    def start(self) -> str:
        """Start (or find running) and wait until it answers; returns the bootstrap address."""

    def stop(self) -> bool:
        """Stop cleanly (then forcibly); True if something was running."""

    def restart(self, *, hard: bool = False, down_s: float = 0.0) -> str:
        """Stop (``hard``: kill, like a crash), stay down ``down_s``, start again on the same data."""

    def wipe(self) -> None:
        """Stop and delete the data: the next start is a fresh cluster."""

    def status(self) -> BrokerStatus: ...


def run_sync(make_coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code, even when this thread has a running loop."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="devkafka") as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()


def answers(bootstrap: str, *, client_kwargs: ClientKwargs | None = None, timeout_s: float = 3.0) -> bool:
    """Does a broker at ``bootstrap`` answer a metadata request right now?"""
    return run_sync(lambda: broker_answers(bootstrap, client_kwargs=client_kwargs or {}, timeout_s=timeout_s))


async def wait_until_answering(
    bootstrap: str, *, clock: Clock, timeout_s: float, still_starting: Callable[[], bool]
) -> bool:
    """Probe until the broker answers (True), its process is gone or the time is up (False)."""
    deadline_s = clock.monotonic_s() + timeout_s
    while still_starting():
        if await broker_answers(bootstrap, client_kwargs={}, timeout_s=2.0):
            return True
        if clock.monotonic_s() >= deadline_s:
            return False
        await clock.sleep_s(0.25)
    return False


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for an error message (empty if there is no such file)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
