"""The run behind the picture: the stack in processes, steady traffic, the API cut once, /metrics scraped.

- A Kafka broker on free ports (data in the work directory), the sandbox (``ecash-worker sandbox``: 30 ms
  latency, ambiguous faults on a few per cent of money calls, token expiry, poor wallets that decline,
  two trace numbers whose Status Inquiry always fails), one worker (``ecash-worker run``) with short
  timeouts, so that resolutions end during the run.
- Between the worker and the sandbox, a TCP relay (``ApiLink``) that is cut once: new connections are
  refused, live ones reset, as if the API went away. Stopping the sandbox would do that too, but it keeps
  its ledger in memory: a restarted one answers "not found" for money it did move, and the picture would
  show failures the worker never caused.
- A real Prometheus server (``prometheus.PrometheusServer``, Debian's package) scrapes the worker's
  /metrics every second, from before the worker starts until it stops.
- At the end, the results topic is checked against the sandbox's ledger (``ecash_dev.chaos.agreement``), and
  Prometheus is asked every drawn panel's expressions over the run (``query_range``, one step per scrape):
  its answers are what is drawn, and are saved (``answers.json``) to draw again without a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.dashboard_snapshot.panels import (
    TOTALS_QUERY,
    Grid,
    dashboard_panels,
    drawn_titles,
    panel_queries,
    peak_queries,
)
from bench.dashboard_snapshot.prometheus import JOB, PrometheusServer, Series
from ecash_dev.chaos.report import ledger_check
from ecash_dev.kafka import LocalKafka, scratch_broker
from ecash_dev.sandbox.state import demo_msisdn
from ecash_dev.stack import CommandProducer, SandboxProcess, WorkerProcess, free_port, namespaced
from worker.clock import Clock, SystemClock
from worker.kafka.admin import ensure_topics, worker_topic_specs
from worker.settings import SANDBOX_API_IDENTITY, Settings, load_settings

LATENCY_MS = 30
POOR_WALLETS = 20  # balance 0: every charge to them is declined (NOT_ENOUGH_CREDITS)
DECLINE_P = 0.02
AMBIGUOUS_KINDS = ("hang_after_commit", "http_5xx_after_commit", "reset_after_commit")
AMBIGUOUS_P = 0.01  # per kind and money operation: 3% of charges and credits go to resolution
TOKEN_EXPIRED_P = 0.002
UNRESOLVED_TRACES = ("DUNRES1", "DUNRES2")  # Status answers 503 for these: unresolved at the deadline
UNRESOLVED_AT_S = 100.0
BAD_MESSAGES_AT_S = 30.0  # three that are not JSON (dead letters), two with a negative amount (rejected)
REQUEST_TIMEOUT_S = 1.5
RESOLUTION_DEADLINE_S = 45.0  # 900 s by default; long enough here for what the cut caught to settle


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RunOptions:
    rate_per_s: float = 200.0
    duration_s: float = 150.0
    msisdns: int = 1_000
    outage_at_s: float = 65.0  # after the first command is sent
    outage_s: float = 15.0
    seed: int = 7
    scrape_interval_s: float = 1.0
    max_tail_s: float = 60.0  # after the last command is sent, for every result
    settle_s: float = 8.0  # scraping goes on this long after the last result
    workdir: Path | None = None

    def validate(self) -> None:
        if self.rate_per_s <= 0 or self.duration_s <= 0 or self.msisdns < 1:
            raise ValueError("--rate, --duration-s and --msisdns must be positive")
        if not 0 <= self.outage_at_s < self.duration_s or self.outage_s < 0:
            raise ValueError("the outage must start while commands are sent (--outage-at-s < --duration-s)")


# --- what is sent, the faults, the worker's settings: pure ------------------------------------------------


@dataclass(frozen=True)
class Planned:
    at_s: float  # after the first message
    value: bytes
    key: bytes | None
    answered: bool  # a result is expected (the message has a readable trace number)


def poor_msisdn(index: int) -> str:
    return f"0816{index:09d}"


def _command(trace: str, kind: str, msisdn: str, amount: str, at_s: float) -> Planned:
    body = {"type": kind, "trace_number": trace, "msisdn": msisdn, "amount": amount}
    return Planned(at_s, orjson.dumps(body), msisdn.encode(), True)


def plan_messages(options: RunOptions) -> list[Planned]:
    """The steady stream of charges and credits, plus the few messages that make the rarer panels move."""
    rng = random.Random(options.seed)
    planned: list[Planned] = []
    for i in range(int(options.rate_per_s * options.duration_s)):
        at_s = i / options.rate_per_s
        if rng.random() < DECLINE_P:
            kind, msisdn, amount = "charge", poor_msisdn(rng.randint(1, POOR_WALLETS)), "25000"
        else:
            kind, msisdn = rng.choice(("charge", "credit")), demo_msisdn(rng.randint(1, options.msisdns))
            amount = str(rng.randint(100, 50_000))
        planned.append(_command(f"D{options.seed % 100:02d}N{i:07d}", kind, msisdn, amount, at_s))
    bad_at_s = min(BAD_MESSAGES_AT_S, options.duration_s / 2)
    planned += [Planned(bad_at_s, b"not json " + bytes([48 + i]), None, False) for i in range(3)]
    planned += [_command(f"DBAD{i}", "charge", demo_msisdn(1), "-5", bad_at_s) for i in range(2)]
    unresolved_at_s = min(UNRESOLVED_AT_S, options.duration_s * 0.7)
    planned += [  # on MSISDNs of their own: nothing else waits behind them
        _command(trace, "charge", demo_msisdn(options.msisdns + 1 + i), "1000", unresolved_at_s)
        for i, trace in enumerate(UNRESOLVED_TRACES)
    ]
    return sorted(planned, key=lambda p: p.at_s)


def fault_rules() -> list[str]:
    """The sandbox's faults (compact syntax); the scripted ones first: the first rule that applies wins."""
    traces = "|".join(UNRESOLVED_TRACES)
    rules = [
        f"charge:hang_after_commit:trace={traces}",
        f"status:http_5xx_before_commit:trace={traces},status=503",
        f"*:token_expired:p={TOKEN_EXPIRED_P}",
    ]
    return rules + [f"{op}:{kind}:p={AMBIGUOUS_P}" for op in ("charge", "credit") for kind in AMBIGUOUS_KINDS]


def sandbox_options(options: RunOptions) -> list[str]:
    argv = ["--auto-create-wallets", "--latency-ms", str(LATENCY_MS), "--random-seed", str(options.seed)]
    for rule in fault_rules():
        argv += ["--fault", rule]
    return argv


def worker_values(
    bootstrap: str, api_base_url: str, prefix: str, workdir: Path, metrics_port: int
) -> dict[str, Any]:
    """The worker's settings: fresh topics; timeouts and schedules short enough to end within the run."""
    return {
        "kafka_bootstrap_servers": bootstrap,
        **namespaced(prefix, 12),
        "api_base_url": api_base_url,
        **SANDBOX_API_IDENTITY,
        "request_timeout_s": REQUEST_TIMEOUT_S,
        "connect_timeout_s": 0.5,
        "resolution_grace_s": 0.5,
        "resolution_schedule_s": [1.0, 2.0, 4.0],
        "resolution_deadline_s": RESOLUTION_DEADLINE_S,
        "not_sent_backoff_initial_s": 0.1,
        "not_sent_backoff_max_s": 1.0,
        "breaker_window_s": 10.0,  # default 30 s: at this rate a 15 s outage would not trip it in time
        "commit_interval_s": 0.5,
        "kafka_session_timeout_s": 6.0,
        "kafka_rebalance_timeout_s": 20.0,
        "drain_timeout_s": 5.0,
        "max_in_flight": 128,
        "max_buffered": 2048,
        "metrics_host": "127.0.0.1",
        "metrics_port": metrics_port,
        "state_dir": workdir / "state",
        "log_level": "INFO",
    }


# --- the API link that can be cut -------------------------------------------------------------------------


class ApiLink:
    """A TCP relay in front of the sandbox. ``cut`` refuses new connections and resets live ones."""

    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = free_port(host)
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/eCashHost"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, self.host, self.port, reuse_address=True)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._live):
            _reset(writer)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(writer)
            return
        self._live |= {writer, up_writer}
        pipes = [asyncio.create_task(_pipe(reader, up_writer)), asyncio.create_task(_pipe(up_reader, writer))]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            self._live -= {writer, up_writer}
            for end in (writer, up_writer):
                end.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65_536):
            writer.write(data)
            await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a host that went away would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


# --- what Prometheus is asked while the run goes on ------------------------------------------------------


class Watch:
    """Questions to the Prometheus that scrapes the run (in a thread: its client is synchronous)."""

    def __init__(self, server: PrometheusServer, clock: Clock) -> None:
        self.server = server
        self.clock = clock
        self.started_s = clock.monotonic_s()
        self.started_unix_s = clock.now().timestamp()

    def elapsed_s(self) -> float:
        return self.clock.monotonic_s() - self.started_s

    async def value(self, expr: str) -> float | None:
        """The expression's value now (its first series), None when it has none."""
        series = await asyncio.to_thread(self.server.query, expr)
        return series[0].points[-1][1] if series else None


@dataclass
class Timeline:
    watch: Watch
    events: list[dict[str, Any]] = field(default_factory=list)

    def note(self, event: str) -> None:
        self.events.append({"at_s": round(self.watch.elapsed_s(), 2), "event": event})


# --- orchestration --------------------------------------------------------------------------------------


async def start_broker(workdir: Path, stack: contextlib.AsyncExitStack) -> LocalKafka:
    broker = scratch_broker(workdir / "kafka", report=say)
    stack.push_async_callback(asyncio.to_thread, broker.stop)
    await asyncio.to_thread(broker.start)
    return broker


async def wait_until(check: Callable[[], Awaitable[bool]], clock: Clock, timeout_s: float) -> bool:
    deadline_s = clock.monotonic_s() + timeout_s
    while not await check():
        if clock.monotonic_s() >= deadline_s:
            return False
        await clock.sleep_s(0.2)
    return True


async def produce_on_schedule(
    producer: CommandProducer, planned: Sequence[Planned], clock: Clock, start_s: float
) -> None:
    """Send each message at its planned time (in bursts of up to 50 ms); flush every second."""
    flushed_s = start_s
    for message in planned:
        delay_s = start_s + message.at_s - clock.monotonic_s()
        if delay_s > 0.05:
            await clock.sleep_s(delay_s)
        await producer.send(message.value, message.key)
        if clock.monotonic_s() - flushed_s >= 1.0:
            await producer.flush()
            flushed_s = clock.monotonic_s()
    await producer.flush()


async def cut_once(
    link: ApiLink, options: RunOptions, clock: Clock, start_s: float, timeline: Timeline
) -> None:
    await clock.sleep_s(start_s + options.outage_at_s - clock.monotonic_s())
    await link.cut()
    timeline.note("API cut")
    say(f"dashboard: the API is cut for {options.outage_s:g} s")
    await clock.sleep_s(options.outage_s)
    await link.open()
    timeline.note("API back")
    say("dashboard: the API is back")


async def progress(watch: Watch, clock: Clock, expected: int) -> None:
    while True:
        await clock.sleep_s(10.0)
        results = await watch.value("sum(ecash_results_total)") or 0.0
        say(f"dashboard {watch.elapsed_s():4.0f} s: {results:.0f} of {expected} commands answered")


async def _cancel(tasks: Sequence[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True)
class Recording:
    """What the picture is drawn from: the run's description, Prometheus' answers, the final counters."""

    meta: dict[str, Any]
    grid: Grid
    answers: dict[str, list[Series]]
    final: list[Series]

    def save(self, path: Path) -> None:
        path.write_bytes(
            orjson.dumps(
                {
                    "meta": self.meta,
                    "grid": asdict(self.grid),
                    "answers": {
                        expr: [_series_json(s) for s in series] for expr, series in self.answers.items()
                    },
                    "final": [_series_json(s) for s in self.final],
                },
                option=orjson.OPT_INDENT_2,
            )
        )

    @classmethod
    def load(cls, path: Path) -> Recording:
        data = orjson.loads(path.read_bytes())
        answers = {expr: [_series_from(s) for s in series] for expr, series in data["answers"].items()}
        return cls(data["meta"], Grid(**data["grid"]), answers, [_series_from(s) for s in data["final"]])


def _series_json(series: Series) -> dict[str, Any]:
    points = [[t, v if math.isfinite(v) else None] for t, v in series.points]
    return {"labels": series.labels, "points": points}


def _series_from(data: dict[str, Any]) -> Series:
    points = [(float(t), math.nan if v is None else float(v)) for t, v in data["points"]]
    return Series(dict(data["labels"]), points)


def ask_prometheus(server: PrometheusServer, grid: Grid) -> tuple[dict[str, list[Series]], list[Series]]:
    """Every drawn panel's expressions and the story's peaks over the grid; the counters at its end."""
    panels = dashboard_panels()
    exprs = [
        expr for title in drawn_titles() for expr, _ in panel_queries(panels[title], server.rate_interval_s)
    ]
    exprs += [expr for _, expr, _ in peak_queries(server.rate_interval_s)]
    answers = {
        expr: server.query_range(expr, grid.start_unix_s, grid.end_unix_s, grid.step_s)
        for expr in dict.fromkeys(exprs)
    }
    return answers, server.query(TOTALS_QUERY, grid.end_unix_s)


@dataclass
class Stack:
    """The parts of a running stack that the run drives."""

    bootstrap: str
    sandbox: SandboxProcess
    link: ApiLink
    worker: WorkerProcess
    settings: Settings
    prometheus: PrometheusServer
    watch: Watch


async def start_stack(
    options: RunOptions, workdir: Path, exits: contextlib.AsyncExitStack, clock: Clock
) -> Stack:
    """Broker, sandbox (poor wallets seeded), the link, Prometheus scraping, the worker on fresh topics.

    Each part is registered on ``exits`` as it starts, so whatever started is stopped on any failure.
    """
    broker = await start_broker(workdir, exits)
    sandbox = SandboxProcess(options=sandbox_options(options), log_path=workdir / "sandbox.log")
    exits.push_async_callback(sandbox.stop)
    await sandbox.start()
    await sandbox.admin.seed_wallets([{"msisdn": poor_msisdn(i), "balance": "0"} for i in range(1, 21)])
    link = ApiLink(sandbox.host, sandbox.port)
    await link.open()
    exits.push_async_callback(link.cut)
    metrics_port = free_port()
    values = worker_values(
        broker.bootstrap, link.base_url, f"dash{uuid.uuid4().hex[:8]}", workdir, metrics_port
    )
    settings = load_settings(**values)
    await ensure_topics(broker.bootstrap, worker_topic_specs(settings), client_kwargs={})
    prometheus = PrometheusServer(
        workdir / "prometheus", [f"127.0.0.1:{metrics_port}"], scrape_interval_s=options.scrape_interval_s
    )
    exits.callback(prometheus.stop)
    await asyncio.to_thread(prometheus.start)
    await asyncio.to_thread(prometheus.wait_first_scrape)  # the worker's first seconds are in the data
    worker = WorkerProcess(values, workdir / "worker.log")
    exits.callback(worker.kill_now)
    watch = Watch(prometheus, clock)
    await worker.start()
    say(
        f"dashboard: broker {broker.bootstrap}, sandbox {sandbox.url}, worker :{metrics_port}, "
        f"prometheus {prometheus.url}; {workdir}"
    )

    async def consuming() -> bool:
        return await watch.value("max(ecash_consuming)") == 1.0

    if not await wait_until(consuming, clock, 60.0):
        raise TimeoutError(f"the worker did not start consuming in 60 s: see {workdir / 'worker.log'}")
    return Stack(broker.bootstrap, sandbox, link, worker, settings, prometheus, watch)


async def drive(
    stack: Stack, options: RunOptions, planned: Sequence[Planned], timeline: Timeline, clock: Clock
) -> None:
    """Send on schedule with the API cut once; wait for every result, then a little longer."""
    expected = sum(1 for p in planned if p.answered)
    timeline.note("sending")
    start_s = clock.monotonic_s()
    tasks = [
        asyncio.create_task(cut_once(stack.link, options, clock, start_s, timeline)),
        asyncio.create_task(progress(stack.watch, clock, expected)),
    ]
    try:
        async with CommandProducer(stack.bootstrap, stack.settings.commands_topic) as producer:
            await produce_on_schedule(producer, planned, clock, start_s)
        timeline.note("all sent")
        await tasks[0]

        async def answered() -> bool:
            return (await stack.watch.value("sum(ecash_results_total)") or 0.0) >= expected

        timeline.note("all answered" if await wait_until(answered, clock, options.max_tail_s) else "gave up")
        await clock.sleep_s(options.settle_s)
    finally:
        await _cancel(tasks)


async def record_run(options: RunOptions, clock: Clock | None = None) -> Recording:
    """Start the stack, drive it, let Prometheus scrape it, check it, ask Prometheus; stop everything."""
    options.validate()
    clock = clock or SystemClock()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="ecash-dashboard-"))
    workdir.mkdir(parents=True, exist_ok=True)
    planned = plan_messages(options)
    async with contextlib.AsyncExitStack() as exits:
        stack = await start_stack(options, workdir, exits, clock)
        timeline = Timeline(stack.watch)
        await drive(stack, options, planned, timeline, clock)
        last_up_unix_s = clock.now().timestamp()  # the picture ends with the worker
        timeline.note(f"worker stopped ({await stack.worker.terminate(30.0)})")
        agreement, sandbox_stats = await ledger_check(stack.bootstrap, stack.settings, stack.sandbox.admin)
        step_s = options.scrape_interval_s
        count = int((last_up_unix_s - stack.watch.started_unix_s) / step_s) + 1
        grid = Grid(stack.watch.started_unix_s, step_s, count)
        answers, final = await asyncio.to_thread(ask_prometheus, stack.prometheus, grid)
        meta = {
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
            "commands": sum(1 for p in planned if p.answered),
            "events": timeline.events,
            "target": {"instance": stack.prometheus.targets[0], "job": JOB},
            "rate_interval_s": stack.prometheus.rate_interval_s,
            "faults": fault_rules(),
            "sandbox": {
                k: sandbox_stats.get(k) for k in ("faults", "calls", "codes", "duplicate_executions")
            },
            "agreement": {k: v for k, v in agreement.to_json().items() if k != "unresolved"},
            "workdir": str(workdir),
        }
    shutil.rmtree(workdir / "kafka", ignore_errors=True)
    return Recording(meta, grid, answers, final)
