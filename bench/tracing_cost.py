"""What tracing costs per command with no exporter (docs/performance.md, "Tracing"; issue 16: under 3%).

    python -m bench.tracing_cost [--commands 4000] [--repeats 7] [--concurrency 64]

Runs the same commands through the real ``Processor`` (the real EcashClient, journal, partition writer,
effects, resolver) in this process, on in-memory stand-ins for what it talks to: an httpx
``MockTransport`` answering Login and Charge, and a transactional producer that keeps nothing. Three
modes, each on fresh parts, ``--repeats`` times (the first two in alternating pairs, the third apart):

- ``untraced``: every function of ``worker.tracing`` the pipeline calls replaced by a no-op
  (the baseline: as if there were no tracing);
- ``none``: what ``ECASH_OTEL_EXPORTER=none`` (the default) runs: each command's ``traceparent``
  extracted, its span context made and current (the ids in the logs), nothing recorded;
- ``recorded``: what ``otlp`` costs in this process, without its network: every span recorded with its
  attributes and handed to a ``BatchSpanProcessor`` whose exporter drops them.

CPU per command is ``time.process_time()`` over the run divided by the commands. On a shared machine the
runs vary by more than the cost of ``none``; so the tracing calls one command makes are also timed alone,
in a loop (``calls_only``), and their added cost set against the untraced median. This leaves out what the
real worker spends besides (aiokafka, the lanes, the metrics and log hooks, real sockets: about
0.65 ms per command, docs/performance.md), so the relative cost printed is an upper bound of the
worker's: the spans' absolute cost is the same, the denominator here is smaller.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, ClassVar

import httpx
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import INVALID_SPAN

from worker import tracing
from worker.clock import FakeClock
from worker.core.breaker import CircuitBreaker
from worker.ecash.client import EcashClient
from worker.events import NULL_SINK
from worker.observability import logs
from worker.pipeline.gate import Gate
from worker.pipeline.intake import parse_command
from worker.pipeline.job import Job
from worker.pipeline.journal import Journal
from worker.pipeline.offsets import PartitionOffsets
from worker.pipeline.ownership import PartitionWriter, WriterPolicy
from worker.pipeline.processor import Processor
from worker.pipeline.publisher import Outbox
from worker.policies import breaker_policy
from worker.settings import SANDBOX_API_IDENTITY, Settings, load_settings

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class NullProducer:
    """A transactional producer that accepts everything and keeps nothing."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def begin_transaction(self) -> None:
        return None

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Awaitable[Any]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def send_offsets_to_transaction(self, offsets: dict[Any, int], group_id: str) -> None:
        return None

    async def commit_transaction(self) -> None:
        return None

    async def abort_transaction(self) -> None:
        return None


def api(request: httpx.Request) -> httpx.Response:
    """Login and every money call answer PROCESSED."""
    if request.url.path.endswith("/Login"):
        return httpx.Response(200, json={"status": "PROCESSED", "token": "t" * 48})
    return httpx.Response(200, json={"status": "PROCESSED", "transactionNumber": "X1"})


def bench_settings() -> Settings:
    return load_settings(
        **SANDBOX_API_IDENTITY,
        api_base_url="http://ecash.invalid/eCashHost",
        commands_topic="commands",
        journal_topic="journal",
        results_topic="results",
        review_topic="review",
        dlq_topic="dlq",
        state_dir=None,
    )


async def run_once(settings: Settings, commands: int, concurrency: int) -> float:
    """CPU seconds for ``commands`` charges through a fresh processor."""
    clock = FakeClock()
    client = EcashClient(settings, transport=httpx.MockTransport(api), clock=clock, sleep=clock.sleep_s)
    journal = Journal(
        topic="journal",
        group_id="g",
        state_dir=None,
        consumer_factory=lambda: None,
        dedupe_window_s=86_400,
        now_ms=lambda: int(clock.now().timestamp() * 1000),
    )
    journal.open_in_memory(0)
    offsets = PartitionOffsets()
    writer = PartitionWriter(
        partition=0,
        txn_id="g.commands.0",
        group_id="g",
        producer_factory=lambda _txn_id: NullProducer(),
        clock=clock,
        policy=WriterPolicy(flush_interval_s=0.0),
        mark_done=lambda _stream, offset: offsets.done(offset),
        committable=lambda: {} if (o := offsets.committable()) is None else {"commands": o},
        offset_key=lambda _stream: ("commands", 0),
        on_lost=lambda _partition, _reason: None,
    )
    await writer.start()
    processor = Processor(
        settings=settings,
        client=client,
        journal=journal,
        outbox=Outbox("results", "dlq", "review"),
        gate=Gate(CircuitBreaker(breaker_policy(settings), clock), clock),
        clock=clock,
        sink=NULL_SINK,
        topic="commands",
    )
    jobs = []
    for i in range(commands):
        msisdn = f"0812{i:09d}"
        raw = json.dumps(
            {"type": "charge", "trace_number": f"B{i}", "msisdn": msisdn, "amount": "100"}
        ).encode()
        intake = parse_command(raw, max_bytes=16_384)
        job = Job(0, i, None, msisdn.encode(), raw, [("traceparent", TRACEPARENT)], intake)
        job.writer = writer
        offsets.add(i)
        jobs.append(job)
    await client.login()
    slots = asyncio.Semaphore(concurrency)

    async def one(job: Job) -> None:
        async with slots:
            assert await processor.handle(job)

    started = time.process_time()
    await asyncio.gather(*(one(job) for job in jobs))
    spent = time.process_time() - started
    await writer.close(flush=True, timeout_s=5.0)
    await client.aclose()
    return spent


class NullExporter(SpanExporter):
    """Takes every batch and sends it nowhere: the recording cost of ``otlp`` without its network."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@contextlib.contextmanager
def mode(name: str) -> Iterator[None]:
    """``none``: the worker's default; ``recorded``: every span recorded and batched to an exporter that
    drops them; ``untraced``: every tracing call of the pipeline a no-op, as if the module were not there."""
    if name == "none":
        tracing.configure("none")
        yield
        return
    if name == "recorded":
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(NullExporter()))
        tracing.install(provider)
        try:
            yield
        finally:
            provider.shutdown()
            tracing.configure("none")
        return

    def null_span(*_args: object, **_kwargs: object) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext(INVALID_SPAN)

    def nothing(*_args: object, **_kwargs: object) -> None:
        return None

    patched: dict[tuple[object, str], Callable[..., Any]] = {
        (tracing, "command_span"): null_span,
        (tracing, "write_span"): null_span,
        (tracing, "resolution_span"): null_span,
        (tracing, "api_call"): null_span,
        (tracing, "api_call_answered"): nothing,
        (tracing, "record_outcome"): nothing,
        (logs, "current_ids"): lambda: {},
    }
    saved = {where: getattr(*where) for where in patched}
    for (module, name), replacement in patched.items():
        setattr(module, name, replacement)
    try:
        yield
    finally:
        for (module, name), original in saved.items():
            setattr(module, name, original)


MODES = ("untraced", "none", "recorded")


class _Message:
    partition, offset, intake = 0, 1, None
    headers: ClassVar[list[tuple[str, bytes]]] = [("traceparent", TRACEPARENT)]


class _Record:
    topic = "journal"


def one_commands_calls() -> None:
    """The tracing calls a charge answered PROCESSED makes, in order, without the work between them."""
    with tracing.command_span(_Message(), "commands"):
        with tracing.write_span([_Record()], ends_message=False):
            pass
        with tracing.api_call("charge", "POST", "http://ecash.invalid/eCashHost", "/Charge") as span:
            tracing.api_call_answered(
                span, http_status=200, code="PROCESSED", call_class="succeeded", reason=""
            )
        tracing.record_outcome("succeeded", "response", "PROCESSED")
        with tracing.write_span([_Record(), _Record()], ends_message=True, prefer=("results",)):
            pass


def calls_only(loops: int = 20_000) -> dict[str, float]:
    """CPU per command of the tracing calls alone, per mode: the added cost without the processor's noise."""
    out: dict[str, float] = {}
    for name in MODES:
        with mode(name):
            for _ in range(loops // 10):
                one_commands_calls()
            started = time.process_time()
            for _ in range(loops):
                one_commands_calls()
            out[name] = round((time.process_time() - started) / loops * 1e6, 1)
    return out


def measure(commands: int, repeats: int, concurrency: int, loops: int = 20_000) -> dict[str, Any]:
    """Every run in an event loop of its own: nothing an earlier run left behind runs during the next."""
    settings = bench_settings()
    for name in MODES:  # warm-up: imports, caches
        with mode(name):
            asyncio.run(run_once(settings, min(commands, 500), concurrency))
    runs: dict[str, list[float]] = {name: [] for name in MODES}
    # untraced and none in pairs, in alternating order (ABBA); recorded in a block of its own afterwards,
    # so that its batch thread and its heap cannot fall on the pair it does not belong to.
    schedule: list[tuple[str, ...]] = [
        ("untraced", "none") if r % 2 == 0 else ("none", "untraced") for r in range(repeats)
    ]
    schedule += [("recorded",)] * repeats
    for order in schedule:
        for name in order:
            gc.collect()  # each run starts from the same heap
            with mode(name):
                spent = asyncio.run(run_once(settings, commands, concurrency))
            runs[name].append(spent / commands * 1e6)
    tracing.configure("none")
    calls = calls_only(loops)
    medians = {name: statistics.median(values) for name, values in runs.items()}
    base = medians["untraced"]
    # each repetition's modes ran back to back: their differences drift less than the medians do
    paired = {
        name: statistics.median(a - b for a, b in zip(runs[name], runs["untraced"], strict=True))
        for name in MODES[1:]
    }
    return {
        "commands": commands,
        "repeats": repeats,
        "concurrency": concurrency,
        "us_per_command": {name: [round(v, 1) for v in values] for name, values in runs.items()},
        "median_us_per_command": {name: round(v, 1) for name, v in medians.items()},
        "added_us_per_command": {name: round(medians[name] - base, 1) for name in MODES[1:]},
        "added_percent": {name: round((medians[name] - base) / base * 100, 2) for name in MODES[1:]},
        "paired_added_us_per_command": {name: round(v, 1) for name, v in paired.items()},
        "paired_added_percent": {name: round(v / base * 100, 2) for name, v in paired.items()},
        "calls_only_us_per_command": calls,
        "calls_only_added_percent": {
            name: round((calls[name] - calls["untraced"]) / base * 100, 2) for name in MODES[1:]
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args(argv)
    figures = measure(args.commands, args.repeats, args.concurrency)
    print(
        f"{args.commands} commands x {args.repeats} repeats, concurrency {args.concurrency}; CPU per command:"
    )
    for name in MODES:
        median = figures["median_us_per_command"][name]
        added = (
            ""
            if name == "untraced"
            else (f"  {figures['added_us_per_command'][name]:+} us = {figures['added_percent'][name]:+}%")
        )
        print(f"  {name:<9} median {median:8.1f} us{added}   runs {figures['us_per_command'][name]}")
    print("median of each repetition's difference from untraced:")
    for name in MODES[1:]:
        paired = figures["paired_added_us_per_command"][name]
        print(f"  {name:<9} {paired:+.1f} us = {figures['paired_added_percent'][name]:+}%")
    calls = figures["calls_only_us_per_command"]
    print("the tracing calls alone, per command (added over no-ops, as a share of the untraced median):")
    for name in MODES[1:]:
        added = calls[name] - calls["untraced"]
        share = figures["calls_only_added_percent"][name]
        print(f"  {name:<9} {calls[name]:6.1f} us  {added:+.1f} us = {share:+}%")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
