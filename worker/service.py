"""Assembling a worker: settings in, adapters built, the loop run until SIGTERM (or a test says stop)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from worker.clock import Clock, SystemClock
from worker.core.breaker import BreakerPolicy, CircuitBreaker
from worker.core.ratelimit import RateLimiter
from worker.ecash.client import EcashClient
from worker.ecash.errors import FatalConfigError
from worker.ecash.ratelimited import RateLimitedTransport
from worker.ecash.transport import make_transport
from worker.kafka_admin import ensure_topics, kafka_client_kwargs, worker_topic_specs
from worker.observability.events import (
    ApiCallFinished,
    BreakerStateChanged,
    Event,
    FanOut,
    LoginFinished,
)
from worker.pipeline.gate import Gate
from worker.pipeline.journal import Journal
from worker.pipeline.ownership import TxnProducer
from worker.pipeline.probe import BreakerProber
from worker.pipeline.processor import Processor
from worker.pipeline.publisher import Outbox
from worker.pipeline.runner import RestoreFailed, Runner
from worker.settings import Settings

log = logging.getLogger("ecash_worker")


class KafkaUnreachable(Exception):
    """The brokers did not answer at start: the message names the setting."""


BREAKER_FAILURE_CODES = frozenset({"not_sent", "ambiguous", "GENERAL_ERROR"})


def breaker_hook(breaker: CircuitBreaker) -> Callable[[Event], None]:
    """The breaker learns the API's health from the same events the metrics see."""

    def hook(event: Event) -> None:
        if isinstance(event, ApiCallFinished):
            if event.code in BREAKER_FAILURE_CODES:
                breaker.record_failure(event.code)
            else:
                breaker.record_success()
        elif isinstance(event, LoginFinished) and not event.ok:
            breaker.record_failure("login")

    return hook


class Worker:
    """One worker process's parts, started and stopped together."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        extra_hooks: list[Callable[[Event], None]] | None = None,
        serve_health: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.sink = FanOut(list(extra_hooks or []))
        self._serve_health = serve_health
        self.health_port: int | None = None
        self.breaker = CircuitBreaker(BreakerPolicy.from_settings(settings), self.clock)
        self.breaker.on_change = lambda state, reason: self.sink.emit(BreakerStateChanged(str(state), reason))
        self.sink.hooks.append(breaker_hook(self.breaker))
        self.gate = Gate(self.breaker, self.clock)
        # Half-open with no command to probe with: a Login decides (worker/pipeline/probe.py).
        self._prober = BreakerProber(
            self.breaker, self.gate, lambda: self.client.login(), self.clock, self.sink, self._fatal
        )
        self.kafka_kwargs: dict[str, Any] = kafka_client_kwargs(settings)
        limiter = RateLimiter(
            settings.api_rate_limit_per_s, burst=max(1, int(settings.api_rate_limit_per_s)), clock=self.clock
        )
        transport = make_transport(
            settings.http_transport,
            max_connections=settings.max_in_flight + 16,
            connect_timeout_s=settings.connect_timeout_s,
        )
        self.client = EcashClient(
            settings, transport=RateLimitedTransport(transport, limiter), sink=self.sink, clock=self.clock
        )
        self.outbox = Outbox(settings.results_topic, settings.dlq_topic, settings.review_topic)
        self.journal = Journal(
            topic=settings.journal_topic,
            group_id=settings.group_id,
            state_dir=settings.state_dir,
            consumer_factory=self._journal_consumer,
            dedupe_window_s=settings.dedupe_window_s,
        )
        self.processor = Processor(
            settings=settings,
            client=self.client,
            journal=self.journal,
            outbox=self.outbox,
            gate=self.gate,
            clock=self.clock,
            sink=self.sink,
            topic=settings.commands_topic,
            limiter=None if limiter.unlimited else limiter,
        )
        self.runner = Runner(
            settings=settings,
            processor=self.processor,
            journal=self.journal,
            gate=self.gate,
            sink=self.sink,
            client_kwargs=self.kafka_kwargs,
            logged_in=lambda: self.client.logged_in,
            producer_factory=self._transactional_producer,
            clock=self.clock,
        )

    def _transactional_producer(self, transactional_id: str) -> TxnProducer:
        """One per owned command partition (ownership.py): starting it fences the previous owner's."""
        producer: TxnProducer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            transactional_id=transactional_id,
            transaction_timeout_ms=60_000,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            max_batch_size=256 * 1024,
            request_timeout_ms=30_000,
            client_id="ecash-worker",
            **self.kafka_kwargs,
        )
        return producer

    def _journal_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            group_id=None,
            isolation_level="read_committed",  # only what owners committed: never a fenced zombie's writes
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
            **self.kafka_kwargs,
        )

    async def run(self) -> int:
        """Run until ``stop()``; returns the process exit code."""
        async with AsyncExitStack() as stack:
            if self.settings.create_topics:
                await self._ensure_topics()
            stack.push_async_callback(self.client.aclose)
            if self._serve_health:
                await self._start_health(stack)
            await self._first_login()
            background = [
                asyncio.create_task(self._fatal_probe_loop(), name="fatal-probe"),
                asyncio.create_task(self.runner.heartbeat_loop(), name="heartbeat"),
                asyncio.create_task(self._prober.run(), name="breaker-probe"),
            ]
            try:
                await self.runner.run()
            finally:
                for task in background:
                    task.cancel()
        return 0

    def stop(self) -> None:
        self.runner.stop()

    async def _ensure_topics(self, patience_s: float = 60.0) -> None:
        """Create missing topics; ride out a broker that is briefly away (a restart) before giving up."""
        deadline = self.clock.monotonic_s() + patience_s
        while True:
            try:
                await ensure_topics(
                    self.settings.kafka_bootstrap_servers,
                    worker_topic_specs(self.settings),
                    client_kwargs=self.kafka_kwargs,
                )
                return
            except KafkaError as exc:
                if self.clock.monotonic_s() >= deadline:
                    raise KafkaUnreachable(
                        f"Kafka at ECASH_KAFKA_BOOTSTRAP_SERVERS={self.settings.kafka_bootstrap_servers} "
                        f"did not answer for {patience_s:.0f} s ({type(exc).__name__})"
                    ) from exc
                log.warning("Kafka not reachable yet (%s); retrying", type(exc).__name__)
                await self.clock.sleep_s(2.0)

    async def _first_login(self) -> None:
        try:
            await self.client.login()
        except FatalConfigError as exc:
            self._fatal(str(exc))
        except Exception as exc:
            log.warning("first login failed (will retry with the first command): %s", exc)

    def _fatal(self, reason: str) -> None:
        from worker.observability.events import FatalConfiguration

        self.gate.set_fatal(reason)
        self.sink.emit(FatalConfiguration(reason))
        log.error("FATAL configuration error, consumption stopped: %s", reason)

    async def _fatal_probe_loop(self, every_s: float = 60.0) -> None:
        """While a fatal configuration error stands, try a login now and then (credentials may be fixed)."""
        while True:
            await asyncio.sleep(5.0)
            if self.gate.fatal is None:
                continue
            await asyncio.sleep(every_s)
            try:
                await self.client.login()
            except FatalConfigError as exc:
                self._fatal(str(exc))
            except Exception:  # noqa: S112 - transient; keep probing
                continue
            else:
                log.warning("login works again; resuming consumption")
                self.gate.clear_fatal()

    async def _start_health(self, stack: AsyncExitStack) -> None:
        from worker.observability.health import serve_health
        from worker.observability.metrics import Metrics

        metrics = Metrics()
        metrics.set_snapshot_source(self.runner.snapshot)
        self.sink.hooks.append(metrics.hook)
        server = await serve_health(self.settings, metrics, self.runner.snapshot)
        self.health_port = server.port
        stack.push_async_callback(server.stop)


async def run_worker(settings: Settings) -> int:
    from worker.observability.logs import configure_logging, log_hook

    configure_logging(settings)
    worker = Worker(settings, extra_hooks=[log_hook])
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        return await worker.run()
    except KafkaUnreachable as exc:
        log.error("%s", exc)
        print(f"ecash-worker: {exc}", file=sys.stderr)
        return 3
    except RestoreFailed as exc:
        print(f"ecash-worker: {exc}; see docs/runbook.md (journal restore)", file=sys.stderr)
        return 4
