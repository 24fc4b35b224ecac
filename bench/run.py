"""The throughput benchmark: the worker, side by side with the naive design, on the same data.

    python -m bench.run                                          # the default scenarios, every design
    python -m bench.run --scenario uniform-50ms --design worker --transport aiohttp
    python -m bench.run --scenario small --json-out bench.json   # the CI-sized run

For each run: a fresh set of topics (12 partitions) on a local broker (started on free ports, or
``--bootstrap``), a fresh sandbox in its own process (``ecash-worker sandbox --latency-ms L
--auto-create-wallets``), N commands pre-loaded (or produced at a fixed rate), then the design under test
in its own process, measured until every result is published. Figures: throughput, latency, CPU per
1,000 commands (from /proc/<pid>/stat), peak RSS (VmHWM), and for the worker its journal restore time on
a restart. One table on stdout, JSON with ``--json-out``. See bench/README.md and docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import random
import resource
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.whatif import CHILDREN
from ecash_dev.stack import (
    ChildProcess,
    CommandProducer,
    SandboxProcess,
    WorkerProcess,
    child_environ,
    free_port,
    namespaced,
    settings_env,
)
from worker.kafka.admin import ensure_topics, worker_topic_specs
from worker.kafka.reading import read_to_end
from worker.settings import SANDBOX_API_IDENTITY, load_settings

CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO_ROOT = Path(__file__).resolve().parents[1]
DESIGNS = ("worker", "baseline", "worker-nojournal", "worker-notxn", "worker-noclaims")
TRANSPORTS = ("aiohttp", "httpx")
WORKER_DESIGNS = ("worker", "worker-nojournal", "worker-notxn", "worker-noclaims")


# --- scenarios ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    latency_ms: float
    commands: int = 100_000
    msisdns: int = 10_000
    hot_share: float = 0.0  # share of the commands that go to the hot MSISDNs
    hot_fraction: float = 0.0  # share of the MSISDNs that are hot
    partitions: int = 12
    rate_per_s: float | None = None  # None: pre-loaded backlog; else produced at this rate while running
    about: str = ""


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "uniform-0ms", 0.0, about="100,000 over 10,000 MSISDNs, pre-loaded; the API answers at once"
        ),
        Scenario("uniform-50ms", 50.0, about="100,000 over 10,000 MSISDNs, pre-loaded; 50 ms API latency"),
        Scenario(
            "skewed-50ms",
            50.0,
            hot_share=0.2,
            hot_fraction=0.01,
            about="as uniform-50ms, but 20% of the commands go to 1% of the MSISDNs",
        ),
        Scenario(
            "paced-50ms",
            50.0,
            commands=30_000,
            rate_per_s=1000.0,
            about="30,000 produced at 1,000/s while the design runs: end-to-end latency under load",
        ),
        Scenario("soak-1m", 0.0, commands=1_000_000, about="1,000,000 pre-loaded: backlog and soak memory"),
        Scenario("small", 50.0, commands=3_000, msisdns=500, about="the CI-sized run"),
    )
}
DEFAULT_SCENARIOS = ("uniform-0ms", "uniform-50ms", "skewed-50ms")


def msisdn_of(index: int) -> str:
    return f"0815{index:09d}"


def workload(scenario: Scenario, seed: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of every command, the same for every design: alternating charge and credit of 100."""
    rng = random.Random(seed)
    hot = max(1, round(scenario.msisdns * scenario.hot_fraction)) if scenario.hot_share > 0 else 0
    for i in range(scenario.commands):
        if hot and rng.random() < scenario.hot_share:
            index = rng.randrange(hot)
        elif hot:
            index = hot + rng.randrange(scenario.msisdns - hot)
        else:
            index = rng.randrange(scenario.msisdns)
        msisdn = msisdn_of(index)
        command = {
            "type": "credit" if i % 2 else "charge",
            "trace_number": f"B{i:010d}",
            "msisdn": msisdn,
            "amount": "100",
        }
        yield msisdn.encode(), orjson.dumps(command)


# --- /proc -------------------------------------------------------------------------------------------------


def cpu_s(pid: int | None) -> float | None:
    """user + system CPU seconds of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid: int | None, name: str) -> int | None:
    """A ``Vm*`` line of /proc/<pid>/status in KiB (VmRSS now, VmHWM the peak)."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (the ``cpu`` line of /proc/stat, idle excluded)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- processes (ecash_dev.stack) ----------------------------------------------------------------------------


class DesignProcess(ChildProcess):
    """The design under test: ``ecash-worker run``, the baseline, or either under a profiler.

    Under py-spy the process we spawn is the profiler; ``measured_pid`` is its child, the interpreter.
    A profiled run is stopped with SIGINT, which both the profiler (it writes its output) and the worker
    (a clean drain, as on SIGTERM) take as "stop".
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        super().__init__(name, [], env=env, log_path=log_path)
        self.argv = argv

    @property
    def profiled(self) -> bool:
        return Path(self.argv[0]).name == "py-spy"

    @property
    def measured_pid(self) -> int | None:
        pid = self.pid
        if pid is None or not self.profiled:
            return pid
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
        return None

    async def stop(self, timeout_s: float = 60.0) -> int | None:
        if not self.running:
            return self.returncode
        if self.profiled:
            self._signal(signal.SIGINT)
            code = await self.wait(timeout_s)
            if code is not None:
                return code
        return await self.terminate(timeout_s)


class Replicas:
    """The design's processes: one, or several replicas of the worker in one consumer group."""

    def __init__(self, processes: list[DesignProcess]) -> None:
        self.processes = processes

    def spawn(self) -> None:
        for process in self.processes:
            process.spawn()

    @property
    def running(self) -> bool:
        return any(process.running for process in self.processes)

    def cpu_s(self) -> float | None:
        used = [cpu_s(process.measured_pid) for process in self.processes]
        return None if all(u is None for u in used) else sum(u or 0.0 for u in used)

    def kib(self, name: str) -> int | None:
        """The largest ``Vm*`` value among the processes (each replica is its own pod)."""
        sizes = [status_kib(process.measured_pid, name) for process in self.processes]
        return max((size for size in sizes if size is not None), default=None)

    async def stop(self) -> list[int | None]:
        return list(await asyncio.gather(*(process.stop() for process in self.processes)))


def replicas_of(design: str, argv: list[str], env: dict[str, str], run_dir: Path, count: int) -> Replicas:
    processes = []
    for index in range(count):
        own = dict(env)
        if index > 0:  # each replica is a pod of its own: its own metrics port and state directory
            own["ECASH_METRICS_PORT"] = str(free_port())
            own["ECASH_STATE_DIR"] = str(run_dir / f"state-{index}")
        name = design if count == 1 else f"{design}-{index}"
        processes.append(DesignProcess(name, argv, own, run_dir / f"{name}.log"))
    return Replicas(processes)


async def start_sandbox(latency_ms: float, log_path: Path) -> SandboxProcess:
    options = ["--latency-ms", str(latency_ms), "--auto-create-wallets", "--token-lifetime-s", "0"]
    sandbox = SandboxProcess(options=options, log_path=log_path)
    await sandbox.start()
    return sandbox


@dataclass
class Context:
    bootstrap: str
    broker_pid: int | None
    work_dir: Path
    max_in_flight: int
    extra_env: dict[str, str]
    log_level: str
    restore: bool
    profile: str
    seed: int
    sample_interval_s: float
    timeout_s: float | None
    worker_src: Path | None = None
    quiet_below_cores: float | None = None
    quiet_wait_s: float = 600.0
    replicas: int = 1


@dataclass(frozen=True)
class Topics:
    prefix: str
    partitions: int

    def settings(self) -> dict[str, Any]:
        return namespaced(self.prefix, self.partitions)

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"

    @property
    def results(self) -> str:
        return f"{self.prefix}.results"

    @property
    def journal(self) -> str:
        return f"{self.prefix}.journal"

    @property
    def claims(self) -> str:
        return f"{self.prefix}.claims"


def design_env(ctx: Context, topics: Topics, api_url: str, transport: str, run_dir: Path) -> dict[str, str]:
    """The environment of ``ecash-worker run`` (the baseline reads the same settings)."""
    values: dict[str, Any] = {
        **topics.settings(),
        "kafka_bootstrap_servers": ctx.bootstrap,
        "api_base_url": api_url,
        **SANDBOX_API_IDENTITY,
        "max_in_flight": ctx.max_in_flight,
        "http_transport": transport,
        "metrics_host": "127.0.0.1",
        "metrics_port": free_port(),
        "state_dir": run_dir / "state",
        "log_format": "json",
        "log_level": ctx.log_level,
    }
    env = {**settings_env(values), **ctx.extra_env}
    # bench.* (the baseline, the no-journal variant) is not installed: it comes from this checkout.
    sources = [ctx.worker_src, REPO_ROOT] if ctx.worker_src is not None else [REPO_ROOT]
    env["PYTHONPATH"] = os.pathsep.join(str(path) for path in sources)
    return child_environ(env)


def design_argv(design: str, profile: str, run_dir: Path, worker_src: Path | None) -> list[str]:
    """The command line of the design under test. With ``worker_src`` the interpreter runs with ``-P``
    (no current directory on sys.path), so PYTHONPATH (``design_env``) picks that tree's ``worker``."""
    python = [sys.executable, "-P"] if worker_src is not None else [sys.executable]
    if design == "baseline":
        return [*python, "-m", "bench.baseline"]
    module = ["-m", "bench.run", "--child", design] if design in CHILDREN else []
    module = module or ["-m", "worker.cli", "run"]
    if profile == "pyinstrument":
        out = str(run_dir / "profile.txt")
        return [*python, "-m", "pyinstrument", "-r", "text", "-o", out, "--show-all", *module]
    if profile == "py-spy":
        out = str(run_dir / "profile.collapsed")
        py_spy = str(Path(sys.executable).with_name("py-spy"))
        record = [py_spy, "record", "--rate", "200", "--format", "raw", "--output", out]
        return [*record, "--", *python, *module]
    return [*python, *module]


# --- Kafka: topics, producing, watching, reading ------------------------------------------------------------


async def create_topics(bootstrap: str, topics: Topics) -> None:
    settings = load_settings(kafka_bootstrap_servers=bootstrap, **SANDBOX_API_IDENTITY, **topics.settings())
    await ensure_topics(bootstrap, worker_topic_specs(settings), client_kwargs={})


async def produce(
    bootstrap: str, topic: str, messages: Iterator[tuple[bytes, bytes]], rate_per_s: float | None = None
) -> int:
    """Send every message (acks=all); at ``rate_per_s`` if given, else as fast as the producer goes."""
    started = time.monotonic()
    async with CommandProducer(bootstrap, topic, linger_ms=1 if rate_per_s else 20) as producer:
        for key, value in messages:
            if rate_per_s:
                ahead_s = started + producer.sent / rate_per_s - time.monotonic()
                if ahead_s > 0:
                    await asyncio.sleep(ahead_s)
            await producer.send(value, key)
            if producer.sent % 10_000 == 0:
                await producer.flush()
        return producer.sent


class EndOffsets:
    """How many records a topic holds (the sum of its partitions' end offsets), asked cheaply."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        self._tps = [TopicPartition(topic, p) for p in range(partitions)]

    async def __aenter__(self) -> EndOffsets:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def total(self) -> int:
        ends = await self._consumer.end_offsets(self._tps)
        return int(sum(ends.values()))


async def read_topic(
    bootstrap: str, topic: str, partitions: int, handle: Callable[[Any], None], timeout_s: float = 600.0
) -> int:
    """Feed every committed record now in ``topic`` to ``handle``; returns how many.

    ``read_committed`` (results are written in transactions), read to the end offsets taken at the start
    (``worker.kafka.reading.read_to_end``: it raises if the read stalls for ``timeout_s``, never returns
    a partial read).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_bytes=64 * 1024**2,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return await read_to_end(consumer, tps, handle, stall_timeout_s=timeout_s, max_records=20_000)
    finally:
        await consumer.stop()


# --- sampling while a design runs --------------------------------------------------------------------------


@dataclass
class Sample:
    t_unix_s: float
    results: int
    design_cpu_s: float | None
    design_rss_kib: int | None
    sandbox_cpu_s: float | None
    broker_cpu_s: float | None
    bench_cpu_s: float
    machine_busy_s: float


@dataclass
class Watch:
    samples: list[Sample] = field(default_factory=list)

    def cpu_between(self, name: str, t0: float, t1: float) -> float | None:
        a, b = self.at(name, t0), self.at(name, t1)
        return None if a is None or b is None else max(0.0, b - a)

    def at(self, name: str, t: float) -> float | None:
        """The named counter at time ``t``, interpolated between the samples around it."""
        points = [(s.t_unix_s, getattr(s, name)) for s in self.samples if getattr(s, name) is not None]
        if not points:
            return None
        before = [p for p in points if p[0] <= t]
        after = [p for p in points if p[0] >= t]
        if not before:
            return float(points[0][1])
        if not after:
            return float(points[-1][1])
        (t0, v0), (t1, v1) = before[-1], after[0]
        if t1 == t0:
            return float(v0)
        return float(v0 + (v1 - v0) * (t - t0) / (t1 - t0))


async def watch_until(
    ctx: Context,
    design: Replicas,
    sandbox: SandboxProcess,
    ends: EndOffsets,
    expected: int,
    timeout_s: float,
) -> tuple[Watch, bool]:
    """Sample the processes until ``expected`` results are in the results topic (or time runs out)."""
    watch = Watch()
    deadline = time.monotonic() + timeout_s
    while True:
        results = await ends.total()
        watch.samples.append(
            Sample(
                time.time(),
                results,
                design.cpu_s(),
                design.kib("VmRSS"),
                cpu_s(sandbox.pid),
                cpu_s(ctx.broker_pid),
                self_cpu_s(),
                machine_busy_s(),
            )
        )
        if results >= expected:
            return watch, True
        if not design.running or time.monotonic() > deadline:
            return watch, False
        await asyncio.sleep(ctx.sample_interval_s)


async def wait_for_quiet(ctx: Context, ours: list[int | None], window_s: float = 3.0) -> float:
    """Wait (at most ``ctx.quiet_wait_s``) until the rest of the machine uses less than
    ``ctx.quiet_below_cores`` over a window: a run on a shared machine measures less of its neighbours."""
    started = time.monotonic()
    while True:
        busy0, mine0 = machine_busy_s(), sum(cpu_s(pid) or 0.0 for pid in ours) + self_cpu_s()
        await asyncio.sleep(window_s)
        busy1, mine1 = machine_busy_s(), sum(cpu_s(pid) or 0.0 for pid in ours) + self_cpu_s()
        others = ((busy1 - busy0) - (mine1 - mine0)) / window_s
        waited = time.monotonic() - started
        assert ctx.quiet_below_cores is not None
        if others < ctx.quiet_below_cores or waited >= ctx.quiet_wait_s:
            return round(waited, 1)


# --- figures -----------------------------------------------------------------------------------------------


def percentiles_ms(values_ms: list[float]) -> dict[str, float | None]:
    if not values_ms:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values_ms)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 1)}


@dataclass
class Timestamps:
    """Per trace number: the command's, the first journal record's and the first result's timestamps."""

    command_ms: dict[str, int] = field(default_factory=dict)
    claim_ms: dict[str, int] = field(default_factory=dict)  # the worker's claim (issue 14), before the intent
    intent_ms: dict[str, int] = field(default_factory=dict)
    outcome_ms: dict[str, int] = field(default_factory=dict)
    result_ms: dict[str, int] = field(default_factory=dict)
    started_ms: dict[str, int] = field(default_factory=dict)  # the baseline's header
    results_total: int = 0
    event_ids: set[str] = field(default_factory=set)

    def add_command(self, record: Any) -> None:
        self.command_ms[orjson.loads(record.value)["trace_number"]] = record.timestamp

    def add_claim(self, record: Any) -> None:
        """A command's first claim record (claims.py: written before its intent)."""
        if record.value is not None:
            claim = orjson.loads(record.value)
            if claim.get("state") == "claimed":
                self.claim_ms.setdefault(claim["trace_number"], record.timestamp)

    def add_journal(self, record: Any) -> None:
        """The first record of a trace number is its intent, the last its outcome (read in offset order)."""
        trace = record.key.decode()
        self.intent_ms.setdefault(trace, record.timestamp)
        self.outcome_ms[trace] = record.timestamp

    def add_result(self, record: Any) -> None:
        self.results_total += 1
        headers = dict(record.headers or ())
        self.event_ids.add(headers.get("event_id", b"").decode())
        trace = orjson.loads(record.value)["trace_number"]
        if trace in self.result_ms:
            return
        self.result_ms[trace] = record.timestamp
        if "bench_started_ms" in headers:
            self.started_ms[trace] = int(headers["bench_started_ms"])


async def collect_timestamps(bootstrap: str, topics: Topics, design: str) -> Timestamps:
    stamps = Timestamps()
    await read_topic(bootstrap, topics.commands, topics.partitions, stamps.add_command)
    await read_topic(bootstrap, topics.results, topics.partitions, stamps.add_result)
    if design in ("worker", "worker-notxn", "worker-noclaims"):  # all write journal records (intents)
        await read_topic(bootstrap, topics.journal, topics.partitions, stamps.add_journal)
    if design == "worker":  # the claims (the what-ifs write none)
        await read_topic(bootstrap, topics.claims, topics.partitions, stamps.add_claim)
    return stamps


@dataclass
class RunFigures:
    scenario: str
    design: str
    transport: str
    commands: int
    latency_ms: float
    max_in_flight: int
    complete: bool = False
    results_distinct: int = 0
    results_published: int = 0
    duration_s: float | None = None  # first result to last result
    wall_s: float | None = None  # process start to last result
    throughput_per_s: float | None = None
    littles_law_bound_per_s: float | None = None
    end_to_end_ms: dict[str, float | None] = field(default_factory=dict)
    service_ms: dict[str, float | None] = field(default_factory=dict)
    # The worker's service time in two parts, from its journal's timestamps: intent record handed to the
    # producer -> outcome record handed to it (intent acknowledged + the API call), and outcome record ->
    # result (the outcome record's acknowledgement): the journal's share of the latency.
    claim_to_intent_ms: dict[str, float | None] = field(default_factory=dict)  # the claim's own latency
    intent_to_outcome_ms: dict[str, float | None] = field(default_factory=dict)
    outcome_to_result_ms: dict[str, float | None] = field(default_factory=dict)
    design_cpu_ms_per_1000: float | None = None
    design_cores: float | None = None
    sandbox_cores: float | None = None
    broker_cores: float | None = None
    bench_cores: float | None = None
    others_cores: float | None = None  # every other process on the machine: a noisy neighbour shows here
    peak_rss_mib: float | None = None
    rss_mib_by_progress: dict[str, float] = field(default_factory=dict)
    rss_series: list[tuple[float, int, float]] = field(default_factory=list)  # (s since start, results, MiB)
    api_call_mean_ms: float | None = None
    restore: dict[str, Any] = field(default_factory=dict)
    profiled: str = "none"
    replicas: int = 1
    rate_per_s: float | None = None
    waited_for_quiet_s: float | None = None
    notes: list[str] = field(default_factory=list)


def fill_timing(figures: RunFigures, stamps: Timestamps, spawned_unix_s: float) -> None:
    figures.results_distinct = len(stamps.result_ms)
    figures.results_published = stamps.results_total
    if not stamps.result_ms:
        return
    first_ms, last_ms = min(stamps.result_ms.values()), max(stamps.result_ms.values())
    figures.duration_s = round((last_ms - first_ms) / 1000, 3)
    figures.wall_s = round(last_ms / 1000 - spawned_unix_s, 3)
    if last_ms > first_ms:
        figures.throughput_per_s = round((len(stamps.result_ms) - 1) / ((last_ms - first_ms) / 1000), 1)
    e2e = [stamps.result_ms[t] - stamps.command_ms[t] for t in stamps.result_ms if t in stamps.command_ms]
    figures.end_to_end_ms = percentiles_ms([float(v) for v in e2e])
    starts = {**(stamps.intent_ms or stamps.started_ms), **stamps.claim_ms}  # the claim comes first
    service = [stamps.result_ms[t] - starts[t] for t in stamps.result_ms if t in starts]
    figures.service_ms = percentiles_ms([float(v) for v in service])
    claimed = [t for t in stamps.result_ms if t in stamps.claim_ms and t in stamps.intent_ms]
    figures.claim_to_intent_ms = percentiles_ms(
        [float(stamps.intent_ms[t] - stamps.claim_ms[t]) for t in claimed]
    )
    if stamps.outcome_ms:
        traces = [t for t in stamps.result_ms if t in stamps.outcome_ms]
        call = [stamps.outcome_ms[t] - stamps.intent_ms[t] for t in traces]
        ack = [stamps.result_ms[t] - stamps.outcome_ms[t] for t in traces]
        figures.intent_to_outcome_ms = percentiles_ms([float(v) for v in call])
        figures.outcome_to_result_ms = percentiles_ms([float(v) for v in ack])


def fill_resources(figures: RunFigures, watch: Watch, stamps: Timestamps) -> None:
    if len(stamps.result_ms) < 2:
        return
    t0 = min(stamps.result_ms.values()) / 1000
    t1 = max(stamps.result_ms.values()) / 1000
    span_s = max(t1 - t0, 1e-9)
    design = watch.cpu_between("design_cpu_s", t0, t1)
    if design is not None:
        figures.design_cpu_ms_per_1000 = round(design * 1000 / len(stamps.result_ms) * 1000, 1)
        figures.design_cores = round(design / span_s, 2)
    ours = 0.0
    for name, attr in (("sandbox", "sandbox_cpu_s"), ("broker", "broker_cpu_s"), ("bench", "bench_cpu_s")):
        used = watch.cpu_between(attr, t0, t1)
        setattr(figures, f"{name}_cores", None if used is None else round(used / span_s, 2))
        ours += used or 0.0
    busy = watch.cpu_between("machine_busy_s", t0, t1)
    if busy is not None:
        figures.others_cores = round(max(0.0, busy - ours - (design or 0.0)) / span_s, 2)
    step = max(1, len(watch.samples) // 200)
    first = watch.samples[0].t_unix_s if watch.samples else 0.0
    figures.rss_series = [
        (round(x.t_unix_s - first, 1), x.results, round(x.design_rss_kib / 1024, 1))
        for x in watch.samples[::step]
        if x.design_rss_kib is not None
    ]
    total = figures.commands
    for share in (0.1, 0.5, 0.9, 1.0):
        rss = next((s.design_rss_kib for s in watch.samples if s.results >= share * total), None)
        if rss is not None:
            figures.rss_mib_by_progress[f"{int(share * 100)}%"] = round(rss / 1024, 1)


# --- the worker's own figures: /metrics --------------------------------------------------------------------


def metric_values(text: str) -> dict[str, float]:
    """``name{labels}`` -> value, from Prometheus' text format."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            out[name] = float(value)
    return out


def summed(values: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in values.items() if k == prefix or k.startswith(prefix + "{"))


async def scrape(env: dict[str, str]) -> dict[str, float]:
    url = f"http://127.0.0.1:{env['ECASH_METRICS_PORT']}/metrics"
    async with httpx.AsyncClient(trust_env=False) as http:
        with contextlib.suppress(httpx.HTTPError):
            return metric_values((await http.get(url, timeout=5.0)).text)
    return {}


def api_mean_ms(values: dict[str, float]) -> float | None:
    total = count = 0.0
    for operation in ("charge", "credit"):
        total += values.get(f'ecash_api_call_duration_seconds_sum{{operation="{operation}"}}', 0.0)
        count += values.get(f'ecash_api_call_duration_seconds_count{{operation="{operation}"}}', 0.0)
    return round(total / count * 1000, 2) if count else None


async def measure_restore(
    env: dict[str, str], state_dir: Path, log_path: Path, partitions: int
) -> dict[str, Any]:
    """Start the worker over the same topics; time its journal restore (from its own metric) and readiness."""
    env = {**env, "ECASH_STATE_DIR": str(state_dir), "ECASH_METRICS_PORT": str(free_port())}
    child = WorkerProcess(dict(SANDBOX_API_IDENTITY), log_path, name="restore")  # env replaced below
    child.env = env
    started = time.monotonic()
    await child.start()
    ready_s: float | None = None
    values: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(trust_env=False) as http:
            ready_url = f"http://127.0.0.1:{env['ECASH_METRICS_PORT']}/readyz"
            while time.monotonic() - started < 600 and child.running:
                values = await scrape(env)
                restored = summed(values, "ecash_journal_restore_duration_seconds_count")
                with contextlib.suppress(httpx.HTTPError):
                    if ready_s is None and (await http.get(ready_url, timeout=2.0)).status_code == 200:
                        ready_s = time.monotonic() - started
                if restored >= partitions and ready_s is not None:
                    break
                await asyncio.sleep(0.1)
    finally:
        await child.terminate(60.0)
    return {
        "restore_s": round(summed(values, "ecash_journal_restore_duration_seconds_sum"), 3),
        "partitions": int(summed(values, "ecash_journal_restore_duration_seconds_count")),
        "records": int(summed(values, "ecash_journal_records_restored_total")),
        "start_to_ready_s": None if ready_s is None else round(ready_s, 2),
    }


# --- one run -----------------------------------------------------------------------------------------------


async def run_one(ctx: Context, scenario: Scenario, design: str, transport: str) -> RunFigures:
    label = f"{scenario.name}-{design}-{transport}"
    run_dir = Path(tempfile.mkdtemp(prefix=label + "-", dir=ctx.work_dir))
    topics = Topics(f"bench-{label}-{uuid.uuid4().hex[:6]}", scenario.partitions)
    figures = RunFigures(
        scenario.name, design, transport, scenario.commands, scenario.latency_ms, ctx.max_in_flight
    )
    if scenario.latency_ms > 0:
        figures.littles_law_bound_per_s = ctx.max_in_flight * ctx.replicas / (scenario.latency_ms / 1000)
    figures.profiled = ctx.profile if design != "baseline" else "none"
    figures.replicas = ctx.replicas if design in WORKER_DESIGNS else 1
    figures.rate_per_s = scenario.rate_per_s
    print(f"[{label}] topics {topics.prefix}, logs in {run_dir}", file=sys.stderr, flush=True)
    if ctx.quiet_below_cores is not None:  # before the pre-load: the wait would count as backlog time
        figures.waited_for_quiet_s = await wait_for_quiet(ctx, [ctx.broker_pid])
    await create_topics(ctx.bootstrap, topics)
    if scenario.rate_per_s is None:
        loaded_at = time.monotonic()
        await produce(ctx.bootstrap, topics.commands, workload(scenario, ctx.seed))
        took_s = time.monotonic() - loaded_at
        print(f"[{label}] pre-loaded {scenario.commands} in {took_s:.1f} s", file=sys.stderr, flush=True)
    sandbox = await start_sandbox(scenario.latency_ms, run_dir / "sandbox.log")
    env = design_env(ctx, topics, sandbox.base_url, transport, run_dir)
    argv = design_argv(design, figures.profiled, run_dir, ctx.worker_src)
    processes = replicas_of(design, argv, env, run_dir, figures.replicas)
    try:
        watch, spawned = await drive(ctx, scenario, topics, figures, processes, sandbox)
    finally:
        await processes.stop()
        await sandbox.stop()
    stamps = await collect_timestamps(ctx.bootstrap, topics, design)
    fill_timing(figures, stamps, spawned)
    fill_resources(figures, watch, stamps)
    figures.complete = figures.complete and figures.results_distinct == scenario.commands
    if design == "worker" and ctx.restore:
        figures.restore = await restore_figures(env, run_dir, topics.partitions, scenario.latency_ms)
    (run_dir / "figures.json").write_bytes(orjson.dumps(asdict(figures), option=orjson.OPT_INDENT_2))
    print(f"[{label}] {summary_line(figures)}", file=sys.stderr, flush=True)
    return figures


async def drive(
    ctx: Context,
    scenario: Scenario,
    topics: Topics,
    figures: RunFigures,
    processes: Replicas,
    sandbox: SandboxProcess,
) -> tuple[Watch, float]:
    """Start the design, feed it (paced scenarios), watch until every result is in; then its own figures."""
    spawned = time.time()
    processes.spawn()
    producer = None
    if scenario.rate_per_s is not None:
        commands = workload(scenario, ctx.seed)
        producer = asyncio.create_task(produce(ctx.bootstrap, topics.commands, commands, scenario.rate_per_s))
    timeout_s = ctx.timeout_s or max(600.0, scenario.commands / 20)
    async with EndOffsets(ctx.bootstrap, topics.results, topics.partitions) as ends:
        # End offsets count the transactions' commit markers too: once they pass the number of commands,
        # count the committed records (read_committed: a transaction still open is not counted yet), and
        # keep sampling until they are all there.
        deadline = time.monotonic() + timeout_s
        watch, figures.complete = await watch_until(
            ctx, processes, sandbox, ends, scenario.commands, timeout_s
        )
        while figures.complete:
            committed = await read_topic(ctx.bootstrap, topics.results, topics.partitions, lambda _r: None)
            if committed >= scenario.commands:
                break
            if time.monotonic() > deadline:
                figures.complete = False
                break
            await asyncio.sleep(ctx.sample_interval_s)
            more, figures.complete = await watch_until(ctx, processes, sandbox, ends, 0, 1.0)  # one sample
            watch.samples.extend(more.samples)
    if producer is not None:
        await producer
    if figures.design in WORKER_DESIGNS:
        figures.api_call_mean_ms = api_mean_ms(await scrape(processes.processes[0].env))
    peak = processes.kib("VmHWM")
    figures.peak_rss_mib = None if peak is None else round(peak / 1024, 1)
    for code in await processes.stop():
        if code not in (0, None):
            figures.notes.append(f"{figures.design} exited with {code}")
    return watch, spawned


async def restore_figures(
    env: dict[str, str], run_dir: Path, partitions: int, latency_ms: float
) -> dict[str, Any]:
    """Warm: the same state directory (checkpointed at the clean stop). Cold: an empty one (the whole
    journal is replayed from the topic)."""
    sandbox = await start_sandbox(latency_ms, run_dir / "sandbox-restore.log")
    try:
        env = {**env, "ECASH_API_BASE_URL": sandbox.base_url}
        warm = await measure_restore(env, run_dir / "state", run_dir / "restore-warm.log", partitions)
        cold = await measure_restore(env, run_dir / "state-cold", run_dir / "restore-cold.log", partitions)
    finally:
        await sandbox.stop()
    return {"warm": warm, "cold": cold}


def summary_line(f: RunFigures) -> str:
    return (
        f"{'complete' if f.complete else 'INCOMPLETE'}: {f.results_distinct}/{f.commands} results, "
        f"{f.throughput_per_s} cmd/s, e2e p50 {f.end_to_end_ms.get('p50')} ms, "
        f"service p50 {f.service_ms.get('p50')} ms, {f.design_cpu_ms_per_1000} CPU ms/1k, "
        f"peak RSS {f.peak_rss_mib} MiB, cores worker/sandbox/kafka/others "
        f"{f.design_cores}/{f.sandbox_cores}/{f.broker_cores}/{f.others_cores}"
    )


# --- the report --------------------------------------------------------------------------------------------


def fmt(value: object, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(runs: list[RunFigures]) -> str:
    header = (
        "scenario", "design", "transport", "N", "cmd/s", "bound", "e2e p50/p95/p99 ms",
        "service p50/p95/p99 ms", "CPU ms/1k", "cores w/sb/kafka/other", "peak RSS MiB",
        "restore cold/warm s", "ok",
    )  # fmt: skip
    rows = [header]
    for r in runs:
        e, s = r.end_to_end_ms, r.service_ms
        cold = r.restore.get("cold", {}).get("restore_s")
        warm = r.restore.get("warm", {}).get("restore_s")
        rows.append(
            (
                r.scenario,
                r.design if r.replicas == 1 else f"{r.design} x{r.replicas}",
                r.transport if r.design != "baseline" else "httpx",
                f"{r.commands:,}",
                fmt(r.throughput_per_s),
                fmt(r.littles_law_bound_per_s),
                "/".join(fmt(e.get(k)) for k in ("p50", "p95", "p99")),
                "/".join(fmt(s.get(k)) for k in ("p50", "p95", "p99")),
                fmt(r.design_cpu_ms_per_1000),
                "/".join(
                    fmt(v, 2) for v in (r.design_cores, r.sandbox_cores, r.broker_cores, r.others_cores)
                ),
                fmt(r.peak_rss_mib),
                f"{fmt(cold, 2)}/{fmt(warm, 2)}" if r.restore else "-",
                "yes" if r.complete else "NO",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(w) if i >= 3 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def targets(runs: list[RunFigures]) -> list[dict[str, Any]]:
    """The targets at 50 ms: >= 90% of min(Little's-law bound, 0 ms throughput), >= 20x the baseline."""
    out: list[dict[str, Any]] = []
    backlog = [r for r in runs if r.design == "worker" and r.rate_per_s is None and r.complete]
    zero = {(r.transport, r.replicas): r.throughput_per_s for r in backlog if r.latency_ms == 0}
    for r in backlog:
        if r.latency_ms != 50 or not r.throughput_per_s:
            continue
        limits = (r.littles_law_bound_per_s, zero.get((r.transport, r.replicas)))
        ceiling = min(x for x in limits if x is not None)
        base = next(
            (b.throughput_per_s for b in runs if b.design == "baseline" and b.scenario == r.scenario), None
        )
        ratio = round(r.throughput_per_s / base, 1) if base else None
        share = round(r.throughput_per_s / ceiling, 3) if ceiling else None
        out.append(
            {
                "scenario": r.scenario,
                "transport": r.transport,
                "replicas": r.replicas,
                "throughput_per_s": r.throughput_per_s,
                "ceiling_per_s": ceiling,
                "share_of_ceiling": share,
                "share_target_met": share is not None and share >= 0.9,
                "baseline_per_s": base,
                "ratio_to_baseline": ratio,
                "ratio_target_met": ratio is not None and ratio >= 20,
            }
        )
    return out


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = status_line_kib("/proc/meminfo", "MemTotal")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": None if mem_kib is None else round(mem_kib / 1024**2, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def status_line_kib(path: str, name: str) -> int | None:
    for line in Path(path).read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return None


# --- the command line --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable")
    parser.add_argument(
        "--design", action="append", choices=DESIGNS, help="repeatable (default: worker, baseline)"
    )
    parser.add_argument(
        "--transport", action="append", choices=TRANSPORTS, help="the worker's ECASH_HTTP_TRANSPORT"
    )
    parser.add_argument("--commands", type=int, help="override the scenario's number of commands")
    parser.add_argument("--msisdns", type=int, help="override the scenario's number of MSISDNs")
    parser.add_argument("--latency-ms", type=float, help="override the scenario's API latency")
    parser.add_argument("--rate", type=float, help="produce at this rate while running (commands/s)")
    parser.add_argument("--max-in-flight", type=int, default=256, help="ECASH_MAX_IN_FLIGHT (default 256)")
    parser.add_argument(
        "--env", action="append", default=[], metavar="ECASH_X=VALUE", help="more worker settings"
    )
    parser.add_argument("--log-level", default="INFO", help="the worker's ECASH_LOG_LEVEL (default INFO)")
    parser.add_argument("--bootstrap", help="an existing broker (default: a local one on free ports)")
    parser.add_argument(
        "--broker-pid", type=int, help="with --bootstrap: the broker's pid, to report its CPU"
    )
    parser.add_argument("--work-dir", type=Path, help="logs, state and per-run JSON (default: a temp dir)")
    parser.add_argument("--json-out", type=Path, help="write every figure here")
    parser.add_argument("--no-restore", action="store_true", help="skip the restart that times the restore")
    parser.add_argument("--profile", choices=("none", "pyinstrument", "py-spy"), default="none")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sample-interval-s", type=float, default=0.5)
    parser.add_argument("--timeout-s", type=float, help="per run (default: max(600, N/20) s)")
    parser.add_argument(
        "--worker-src",
        type=Path,
        help="run the designs from this source tree (a directory holding worker/): compare two versions",
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        metavar="CORES",
        help="before each run, wait until other processes use fewer cores than this (a shared machine)",
    )
    parser.add_argument("--quiet-wait-s", type=float, default=600.0, help="the longest such wait")
    parser.add_argument("--replicas", type=int, default=1, help="worker processes in one group (default 1)")
    parser.add_argument("--child", choices=tuple(CHILDREN), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def scenarios_of(args: argparse.Namespace) -> list[Scenario]:
    chosen = [SCENARIOS[name] for name in (args.scenario or DEFAULT_SCENARIOS)]
    changes: dict[str, Any] = {}
    if args.commands is not None:
        changes["commands"] = args.commands
    if args.msisdns is not None:
        changes["msisdns"] = args.msisdns
    if args.latency_ms is not None:
        changes["latency_ms"] = args.latency_ms
    if args.rate is not None:
        changes["rate_per_s"] = args.rate
    return [replace(s, **changes) for s in chosen]


def plan(args: argparse.Namespace) -> list[tuple[Scenario, str, str]]:
    designs = args.design or ["worker", "baseline"]
    transports = args.transport or list(TRANSPORTS)
    runs: list[tuple[Scenario, str, str]] = []
    for scenario in scenarios_of(args):
        for design in designs:
            for transport in transports if design in WORKER_DESIGNS else ["httpx"]:
                runs.append((scenario, design, transport))
    return runs


@contextlib.contextmanager
def broker(args: argparse.Namespace, work_dir: Path) -> Iterator[tuple[str, int | None]]:
    if args.bootstrap:
        yield args.bootstrap, args.broker_pid
        return
    from ecash_dev.kafka import LocalKafka, LocalKafkaConfig, default_cache_dir, free_ports

    port, controller = free_ports(2)
    config = LocalKafkaConfig(
        data_dir=work_dir / "kafka",
        cache_dir=default_cache_dir(os.environ),
        port=port,
        controller_port=controller,
    )
    local = LocalKafka(config, java_home=os.environ.get("JAVA_HOME"))
    local.start()
    try:
        yield local.bootstrap, local.pid()
    finally:
        local.stop()


async def main_async(args: argparse.Namespace) -> int:
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="ecash-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    extra = dict(item.split("=", 1) for item in args.env)
    runs: list[RunFigures] = []
    with broker(args, work_dir) as (bootstrap, broker_pid):
        ctx = Context(
            bootstrap, broker_pid, work_dir, args.max_in_flight, extra, args.log_level,
            not args.no_restore, args.profile, args.seed, args.sample_interval_s, args.timeout_s,
            args.worker_src.resolve() if args.worker_src else None, args.quiet_below, args.quiet_wait_s,
            args.replicas,
        )  # fmt: skip
        for scenario, design, transport in plan(args):
            runs.append(await run_one(ctx, scenario, design, transport))
    goals = targets(runs)
    report: dict[str, Any] = {
        "machine": machine(),
        "argv": sys.argv,
        "runs": [asdict(r) for r in runs],
        "targets": goals,
    }
    print(table(runs))
    for r in runs:
        if r.claim_to_intent_ms.get("p50") is not None:
            c = r.claim_to_intent_ms
            print(
                f"{r.scenario}: {r.design} ({r.transport}): claim -> intent p50/p99 {c['p50']}/{c['p99']} ms"
            )
    for line in ratio_lines(runs):
        print(line)
    for target in goals:
        print(target_line(target))
    if args.json_out:
        args.json_out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0 if all(r.complete for r in runs) else 1


def ratio_lines(runs: list[RunFigures]) -> list[str]:
    """Throughput of each worker run over the baseline's in the same scenario."""
    lines = []
    for r in runs:
        base = next((b for b in runs if b.design == "baseline" and b.scenario == r.scenario), None)
        if r.design == "baseline" or base is None or not r.throughput_per_s or not base.throughput_per_s:
            continue
        ratio = r.throughput_per_s / base.throughput_per_s
        design = r.design if r.replicas == 1 else f"{r.design} x{r.replicas}"
        lines.append(f"{r.scenario}: {design} ({r.transport}) / baseline = {ratio:.1f}x")
    return lines


def target_line(t: dict[str, Any]) -> str:
    replicas = f" x{t['replicas']}" if t["replicas"] > 1 else ""
    return (
        f"{t['scenario']} ({t['transport']}{replicas}): {t['throughput_per_s']} cmd/s = "
        f"{fmt(t['share_of_ceiling'], 3)} of min(bound, 0 ms) {fmt(t['ceiling_per_s'])} "
        f"[{'met' if t['share_target_met'] else 'NOT met'} >= 0.9]; "
        f"{fmt(t['ratio_to_baseline'], 1)}x the baseline's {fmt(t['baseline_per_s'])} "
        f"[{'met' if t['ratio_target_met'] else 'NOT met'} >= 20x]"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        return CHILDREN[args.child]()
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries while new topics elect leaders
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
