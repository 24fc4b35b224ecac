"""Assembling a worker: settings in, adapters built, the loop run until SIGTERM (or a test says stop)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError

from worker import __version__, tracing
from worker.clock import Clock, SystemClock
from worker.core.breaker import CircuitBreaker
from worker.core.ratelimit import RateLimiter
from worker.ecash.client import EcashClient
from worker.ecash.errors import FatalConfigError
from worker.ecash.ratelimited import RateLimitedTransport
from worker.ecash.transport import api_network, make_transport
from worker.events import (
    ApiCallFinished,
    BreakerStateChanged,
    Event,
    FanOut,
    LoginFinished,
)
from worker.gc_policy import freeze_start_up, tune_collector
from worker.kafka import clients
from worker.kafka.admin import kafka_client_kwargs
from worker.kafka.topics import KafkaUnreachable, prepare_topics
from worker.malloc_policy import fix_mmap_threshold
from worker.observability.loop_lag import watch_loop_lag
from worker.pipeline.claims_index import ClaimsIndex, open_claims_store
from worker.pipeline.gate import Gate
from worker.pipeline.journal import Journal
from worker.pipeline.ownership import TxnProducer
from worker.pipeline.probe import BreakerProber
from worker.pipeline.processor import Processor
from worker.pipeline.publisher import Outbox
from worker.pipeline.runner import RestoreFailed, Runner
from worker.policies import breaker_policy
from worker.settings import Settings, SettingsError

__all__ = ["BREAKER_FAILURE_CODES", "Worker", "breaker_hook", "run", "run_worker"]

log = logging.getLogger("ecash_worker")


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

    pipeline_started = False  # set when start-up is over: before it, a stop cancels the start-up
    topics_prepared = False  # run_worker checked the topics before building the worker's clients

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
        self.breaker = CircuitBreaker(breaker_policy(settings), self.clock)
        self.breaker.on_change = lambda state, reason: self.sink.emit(BreakerStateChanged(state, reason))
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
            network=api_network(settings),
        )
        self.client = EcashClient(
            settings, transport=RateLimitedTransport(transport, limiter), sink=self.sink, clock=self.clock
        )
        self.outbox = Outbox(
            settings.results_topic,
            settings.dlq_topic,
            settings.review_topic,
            source=f"/ecash-worker/{settings.commands_topic}",
        )
        self.journal = Journal(
            topic=settings.journal_topic,
            group_id=settings.group_id,
            state_dir=settings.state_dir,
            consumer_factory=self._journal_consumer,
            dedupe_window_s=settings.dedupe_window_s,
        )
        self.claims = ClaimsIndex(
            topic=settings.claims_topic,
            open_store=lambda: open_claims_store(
                settings.state_dir, settings.group_id, settings.claims_topic
            ),
            consumer_factory=self._claims_consumer,
            offsets_consumer_factory=lambda: clients.claims_offsets_consumer(settings, self.kafka_kwargs),
            delete_retention_ms=int(min(settings.journal_retention_s, 86_400.0) * 1000),
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
            claims=self.claims,
        )
        self.runner = Runner(
            settings=settings,
            processor=self.processor,
            journal=self.journal,
            gate=self.gate,
            sink=self.sink,
            logged_in=lambda: self.client.logged_in,
            consumer_factory=lambda: clients.commands_consumer(settings, self.kafka_kwargs),
            decisions_consumer_factory=lambda: clients.decisions_consumer(settings, self.kafka_kwargs),
            producer_factory=self._transactional_producer,
            clock=self.clock,
            claims=self.claims,
        )

    def _transactional_producer(self, transactional_id: str) -> TxnProducer:
        """One per owned command partition (ownership.py): starting it fences the previous owner's."""
        producer: TxnProducer = clients.transactional_producer(
            self.settings, self.kafka_kwargs, transactional_id
        )
        return producer

    def _journal_consumer(self) -> AIOKafkaConsumer:
        return clients.restore_consumer(self.settings, self.kafka_kwargs)

    def _claims_consumer(self) -> AIOKafkaConsumer:
        return clients.claims_consumer(self.settings, self.kafka_kwargs)

    async def run(self) -> int:
        """Run until ``stop()``; returns the process exit code."""
        async with AsyncExitStack() as stack:
            if not self.topics_prepared:
                await self._ensure_topics()
            stack.push_async_callback(self.client.aclose)
            if self._serve_health:
                try:
                    await self._start_health(stack)
                except OSError as exc:
                    where = f"{self.settings.metrics_host}:{self.settings.metrics_port}"
                    line = f"ECASH_METRICS_PORT: cannot listen on {where} ({exc.strerror or exc})"
                    raise SettingsError([line]) from None
            await self._first_login()
            background = [
                asyncio.create_task(self._fatal_probe_loop(), name="fatal-probe"),
                asyncio.create_task(self.runner.heartbeat_loop(), name="heartbeat"),
                asyncio.create_task(self._prober.run(), name="breaker-probe"),
                asyncio.create_task(watch_loop_lag(self.sink, self.clock), name="loop-lag"),
            ]
            self.pipeline_started = True
            try:
                await self.runner.run()
            finally:
                for task in background:
                    task.cancel()
        return 0

    def stop(self) -> None:
        self.runner.stop()

    async def _ensure_topics(self) -> None:
        """Check every topic (creating or repairing what ``ECASH_CREATE_TOPICS`` allows); ride out a
        broker that is briefly away (a restart) for ``ECASH_KAFKA_START_TIMEOUT_S``. See
        ``worker.kafka.topics``."""
        patience_s = self.settings.kafka_start_timeout_s
        await prepare_topics(self.settings, self.kafka_kwargs, clock=self.clock, patience_s=patience_s)

    async def _first_login(self) -> None:
        try:
            await self.client.login()
        except FatalConfigError as exc:
            self._fatal(str(exc))
        except Exception as exc:  # noqa: BLE001 - a failed first login is retried with the first command
            log.warning("first login failed (will retry with the first command): %s", exc)

    def _fatal(self, reason: str) -> None:
        from worker.events import FatalConfiguration

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
            except Exception:  # noqa: BLE001, S112 - transient; keep probing
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


async def run_worker(settings: Settings) -> int:  # noqa: C901 - one exit code per start-up failure, as docs/settings.md lists them
    """The worker until SIGTERM or Ctrl-C. A signal during start-up (waiting for Kafka, checking topics,
    the first login) cancels the start-up at once: exit 0, nothing was consumed. Exit 2 for a setting
    the start-up finds wrong, 3 when Kafka did not answer (see docs/settings.md).

    Kafka and the topics are checked before the worker's clients are built, so that a refusal leaves
    nothing half-made behind it."""
    from worker.observability.logs import configure_logging, log_hook

    configure_logging(settings)
    tracing.configure(settings.otel_exporter, service_version=__version__)
    loop = asyncio.get_running_loop()
    this = asyncio.current_task()
    worker: Worker | None = None
    stopped_in_start_up = False

    def on_signal() -> None:
        nonlocal stopped_in_start_up
        if worker is not None and worker.pipeline_started:
            worker.stop()
        elif this is not None and not stopped_in_start_up:
            stopped_in_start_up = True
            this.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await prepare_topics(
            settings,
            kafka_client_kwargs(settings),
            clock=SystemClock(),
            patience_s=settings.kafka_start_timeout_s,
        )
        worker = Worker(settings, extra_hooks=[log_hook])
        worker.topics_prepared = True
        freeze_start_up()
        return await worker.run()
    except asyncio.CancelledError:
        if not stopped_in_start_up:
            raise
        log.warning("stopped during start-up")
        return 0
    except SettingsError as exc:
        for line in exc.lines:  # on stderr as is, not as a log event: one readable line
            print(f"ecash-worker: {line}", file=sys.stderr)
        return 2
    except KafkaUnreachable as exc:
        print(f"ecash-worker: {exc}", file=sys.stderr)
        return 3
    except KafkaConnectionError as exc:  # a client's own bootstrap found no broker: gone since the check
        bootstrap = settings.kafka_bootstrap_servers
        print(
            f"ecash-worker: ECASH_KAFKA_BOOTSTRAP_SERVERS: Kafka at {bootstrap} stopped answering a client "
            f"of the worker ({type(exc).__name__}); exiting, to be started again",
            file=sys.stderr,
        )
        return 3
    except RestoreFailed as exc:
        print(f"ecash-worker: {exc}; see docs/runbook.md (journal restore)", file=sys.stderr)
        return 4
    finally:
        tracing.shutdown()  # the exporter's last batch


def run(settings: Settings) -> int:
    """``run_worker`` in an event loop of ``ECASH_EVENT_LOOP``'s kind: asyncio's, or uvloop's (the same
    code on libuv; docs/performance.md has what it saves), with the cycle collector tuned
    (``worker.gc_policy``) and large buffers handed back to the system when freed
    (``worker.malloc_policy``)."""
    tune_collector(settings.gc_gen0_threshold)
    fix_mmap_threshold()
    if settings.event_loop == "uvloop":
        import uvloop

        return uvloop.run(run_worker(settings))
    return asyncio.run(run_worker(settings))
