"""What a run leaves behind, turned into figures: timestamps read from the topics, latency percentiles,
throughput, CPU and memory over the run, and the worker's own /metrics."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from bench.sampling import Watch
from bench.topics import Topics, read_topic


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
    """Every topic the design wrote, read at once: each fills its own part of the stamps."""
    stamps = Timestamps()
    reads = [(topics.commands, stamps.add_command), (topics.results, stamps.add_result)]
    if design in ("worker", "worker-notxn", "worker-noclaims", "worker-notracing"):  # all write intents
        reads.append((topics.journal, stamps.add_journal))
    if design in ("worker", "worker-notracing"):  # the claims (the other what-ifs write none)
        reads.append((topics.claims, stamps.add_claim))
    await asyncio.gather(*(read_topic(bootstrap, topic, topics.partitions, add) for topic, add in reads))
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
    # Between the 10th and the 90th percentile of the result times: without the start (partitions
    # assigned, a second replica joining) and the tail (the last partitions draining alone).
    steady_per_s: float | None = None
    littles_law_bound_per_s: float | None = None
    end_to_end_ms: dict[str, float | None] = field(default_factory=dict)
    end_to_end_steady_ms: dict[str, float | None] = field(default_factory=dict)  # paced: steady_end_to_end_ms
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
    writes: dict[str, float | None] = field(default_factory=dict)  # write_means, from the first replica
    restore: dict[str, Any] = field(default_factory=dict)
    profiled: str = "none"
    replicas: int = 1
    rate_per_s: float | None = None
    ready_after_s: float | None = None  # paced runs: from start until the worker owned every partition
    waited_for_quiet_s: float | None = None
    notes: list[str] = field(default_factory=list)


def steady_window(ordered: list[int]) -> tuple[int, int]:
    """The indexes of the 10th and the 90th percentile of ``ordered`` (sorted): a run's steady middle,
    without its start and its tail."""
    return len(ordered) // 10, len(ordered) - 1 - len(ordered) // 10


def steady_per_s(result_ms: list[int]) -> float | None:
    """Results per second between the 10th and the 90th percentile of their times (None: too few)."""
    if len(result_ms) < 20:
        return None
    ordered = sorted(result_ms)
    low, high = steady_window(ordered)
    span_s = (ordered[high] - ordered[low]) / 1000
    return round((high - low) / span_s, 1) if span_s > 0 else None


def steady_end_to_end_ms(command_ms: dict[str, int], result_ms: dict[str, int]) -> dict[str, float | None]:
    """End-to-end percentiles of the commands produced between the 10th and the 90th percentile of the
    command times (a paced run's steady load): without its onset, where every process on the machine meets
    the load at once and the first seconds' commands queue (docs/performance.md, "An idle worker, warm
    restarts, and the onset of a load"), and without its end. Empty percentiles if too few commands."""
    answered = [trace for trace in result_ms if trace in command_ms]
    if len(answered) < 20:
        return percentiles_ms([])
    ordered = sorted(command_ms[trace] for trace in answered)
    low, high = (ordered[i] for i in steady_window(ordered))
    steady = [trace for trace in answered if low <= command_ms[trace] <= high]
    return percentiles_ms([float(result_ms[trace] - command_ms[trace]) for trace in steady])


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
    figures.steady_per_s = steady_per_s(list(stamps.result_ms.values()))
    e2e = [stamps.result_ms[t] - stamps.command_ms[t] for t in stamps.result_ms if t in stamps.command_ms]
    figures.end_to_end_ms = percentiles_ms([float(v) for v in e2e])
    figures.end_to_end_steady_ms = steady_end_to_end_ms(stamps.command_ms, stamps.result_ms)
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


def write_means(values: dict[str, float]) -> dict[str, float | None]:
    """From the worker's own histograms: the mean transaction (wait before it, its duration, records in it)
    and the mean claim read-back, the parts of a command's latency that are writes."""

    def mean_ms(name: str) -> float | None:
        count = values.get(f"{name}_count", 0.0)
        return round(values.get(f"{name}_sum", 0.0) / count * 1000, 2) if count else None

    transactions = values.get("ecash_transaction_duration_seconds_count", 0.0)
    records = values.get("ecash_transaction_records_total", 0.0)
    return {
        "transaction_wait_ms": mean_ms("ecash_transaction_wait_seconds"),
        "transaction_ms": mean_ms("ecash_transaction_duration_seconds"),
        "records_per_transaction": round(records / transactions, 1) if transactions else None,
        "transactions": transactions,
        "claim_read_back_ms": mean_ms("ecash_claim_read_back_seconds"),
        "loop_lag_ms": mean_ms("ecash_event_loop_lag_seconds"),
    }


def api_mean_ms(values: dict[str, float]) -> float | None:
    total = count = 0.0
    for operation in ("charge", "credit"):
        total += values.get(f'ecash_api_call_duration_seconds_sum{{operation="{operation}"}}', 0.0)
        count += values.get(f'ecash_api_call_duration_seconds_count{{operation="{operation}"}}', 0.0)
    return round(total / count * 1000, 2) if count else None
