"""The least CPU one command can cost a worker process with the promise on: its I/O alone, nothing else.

    python -m bench.promise_floor --bootstrap 127.0.0.1:29092 --broker-pid PID   # 20,000 commands a leg
    python -m bench.promise_floor --commands 300 --json-out x.json                # a smoke run, own broker

Issue 18 asks for at most 0.5 ms of CPU per command in one process and 2,000 commands/s on a 2-core
machine that also runs the broker and the sandbox. This measures the floor under both: each leg of a
command's I/O, in a process of its own, with everything that is not I/O taken out. Records are built before
the clock starts (no pydantic, no JSON, no logging, no metrics, no tracing, no decision logic), and each leg
does only the calls the promise needs, through the worker's own adapters:

- ``httpx``: the HTTP request alone: a Charge's form, built before the clock starts, posted through the
  worker's httpx client and aiohttp transport, its JSON answer parsed. No request model, no answer model,
  no retry or lease: the least the money call can cost through httpx (``../shared/tools`` measured 0.36 ms
  for this leg against its own server).
- ``client``: the money call as the worker makes it: ``EcashClient.charge`` (its request and answer
  models, its first attempt outside tenacity, its events to a sink that drops them).
- ``kafka``: the three writes of a command that ends at its first answer, through the worker's
  ``PartitionWriter`` of the command's partition (one transactional producer per partition, as the
  worker's): its claim, then a wait until the worker's ``ClaimsIndex`` (the follower of the whole claims
  topic, SQLite) has read it back; its intent; then its journal outcome, the claim's final state and its
  result event with its offset, in one transaction.
- ``floor``: the kafka leg with the ``httpx`` leg's request between the intent and the outcome: the whole
  of a command's I/O, in the order the worker does it, and nothing else.

With ``--rate R`` the commands start at R a second (at most ``--in-flight`` at a time) and each one's
latency counts from when it was due: the least latency this I/O allows under a steady load (issue 18's
``paced`` target: p99 at most 150 ms at half the measured capacity). Without it, every leg runs
``--in-flight`` commands at a time (256, the worker's default) against the sandbox (``ecash-worker
sandbox``; at 0 ms unless ``--latency-ms``), each in a fresh process on uvloop (the worker's default loop).

Each leg reports the process's CPU per command (``getrusage``, first command to last), the broker's and the
sandbox's over the same time (``/proc``), and what that sum allows on this machine's cores: ``cores /
(process + broker + sandbox CPU per command)``, the most any worker could do here with this I/O.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.figures import percentiles_ms, steady_window
from bench.processes import REPO_ROOT, start_sandbox
from bench.repartition_hop import PARTITIONS, Meter, StageConfig, Writers, broker, workload
from bench.reporting import machine
from bench.sampling import cpu_s
from bench.topics import read_topic
from worker.clock import SystemClock
from worker.contracts import Command, Outcome, ResolvedBy
from worker.core.fingerprint import fingerprint
from worker.ecash import wire
from worker.ecash.client import EcashClient
from worker.ecash.codes import CallClass
from worker.ecash.models import ChargeRequest
from worker.ecash.session import release
from worker.ecash.transport import make_transport
from worker.kafka import clients
from worker.kafka.admin import TopicSpec, claims_topic_spec, ensure_topics, journal_topic_spec
from worker.pipeline.claims import claim_key, claim_record, claims_partition, final_claim, new_claim, standing
from worker.pipeline.claims_index import ClaimsIndex, ClaimsStore
from worker.pipeline.journal import JournalRecord, JournalState
from worker.pipeline.ownership import OutRecord, WriterPolicy
from worker.pipeline.publisher import Outbox
from worker.pipeline.results import command_result
from worker.settings import SANDBOX_API_IDENTITY, Settings, load_settings

LEGS = ("httpx", "client", "kafka", "floor")


@dataclass(frozen=True)
class Prepared:
    """One command's records, built before the clock starts."""

    command: Command
    partition: int
    offset: int
    key: str
    claim: OutRecord
    intent: OutRecord
    outcome: list[OutRecord]


def prepare(cfg: StageConfig, journal_topic: str, results_topic: str) -> list[Prepared]:
    outbox = Outbox(results_topic, "unused-dlq", "unused-review", source="/bench/promise_floor")
    now = SystemClock().now()
    offsets = [0] * PARTITIONS
    out = []
    for raw_key, value in workload(cfg.commands, cfg.msisdns, cfg.seed):
        command = Command.model_validate_json(value)
        # the command's partition: Kafka's default partitioner over its key (the MSISDN), as a producer's
        partition = claims_partition(raw_key.decode(), PARTITIONS)
        offset = offsets[partition]
        offsets[partition] += 1
        print_ = fingerprint(command)
        claim = new_claim(command, print_, topic=cfg.source, partition=partition, offset=offset)
        intent = JournalRecord(
            trace_number=command.trace_number,
            fingerprint=print_,
            state=JournalState.INTENT,
            command=command,
            partition=partition,
            offset=offset,
            updated_at=now,
            sends=1,
        )
        result = command_result(
            command,
            partition=partition,
            offset=offset,
            outcome=Outcome.SUCCEEDED,
            resolved_by=ResolvedBy.RESPONSE,
            detail="the API answered 00",
            now=now,
            attempts=1,
            response_code="00",
            transaction_number="1",
            trx_datetime=None,
        )
        done = intent.model_copy(update={"state": JournalState.DONE, "result": result})

        def journal(record: JournalRecord, p: int = partition) -> OutRecord:
            return OutRecord(
                journal_topic, record.trace_number.encode(), record.model_dump_json().encode(), p
            )

        out.append(
            Prepared(
                command=command,
                partition=partition,
                offset=offset,
                key=claim_key(cfg.source, partition, offset),
                claim=claim_record(cfg.claims, claim, PARTITIONS),
                intent=journal(intent),
                outcome=[
                    journal(done),
                    claim_record(cfg.claims, final_claim(claim, None, result), PARTITIONS),
                    outbox.result(result),
                ],
            )
        )
    return out


class Leg:
    """One leg's adapters, and one command through them."""

    def __init__(self, cfg: StageConfig, which: str, settings: Settings) -> None:
        self.which = which
        self.failure: list[str] = []
        self.writers: Writers | None = None
        if which in ("kafka", "floor"):  # the worker's producer settings and policy (pipeline/runner.py)
            self.writers = Writers(
                cfg,
                cfg.source,
                lambda p, why: self.failure.append(f"{p}: {why}"),
                producer_factory=lambda tid: clients.transactional_producer(settings, {}, tid),
                policy=WriterPolicy(
                    flush_interval_s=settings.txn_flush_interval_s,
                    max_batch_records=settings.txn_max_records,
                    offset_interval_s=settings.commit_interval_s,
                ),
            )
        self.index = (
            ClaimsIndex(  # the worker's follower (worker/service.py), its store in memory
                topic=cfg.claims,
                open_store=lambda: ClaimsStore(None),
                consumer_factory=lambda: clients.claims_consumer(settings, {}),
                offsets_consumer_factory=lambda: clients.claims_offsets_consumer(settings, {}),
                delete_retention_ms=86_400_000,
            )
            if self.writers is not None
            else None
        )
        self.client = None
        if which != "kafka":
            transport = make_transport("aiohttp", cfg.in_flight + 16, settings.connect_timeout_s)
            self.client = EcashClient(settings, transport=transport)
        self._headers = {wire.HEADER_API_KEY: settings.api_key.get_secret_value()}
        self._raw: list[dict[str, str]] = []  # the httpx and floor legs' forms, built before the clock

    async def start(self, commands: list[Prepared]) -> None:
        if self.writers is not None and self.index is not None:
            await self.writers.start()
            await self.index.start(timeout_s=30.0)
        if self.client is not None:
            await self.client.__aenter__()
            await self.client.login()
            if self.which in ("httpx", "floor"):
                token = await self.client._session.token()  # the bench posts what the client would
                self._raw = [
                    ChargeRequest(
                        msisdn=c.command.msisdn, amount=c.command.amount, trace_number=c.command.trace_number
                    ).form(token)
                    for c in commands
                ]

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.__aexit__(None, None, None)
        if self.index is not None:
            await self.index.stop()
        if self.writers is not None:
            await self.writers.close()

    async def claim_and_intent(self, item: Prepared) -> None:
        if self.writers is None or self.index is None:
            return
        writer = self.writers.of(item.partition)
        await writer.write([item.claim])
        while not self.index.has(item.key):  # as the worker does (pipeline/claiming.py)
            await self.index.wait_for_key(item.key, lambda: False)
        found = standing(item.key, self.index.entries(item.command.trace_number))
        if found is None or found.kind != "owner":
            raise RuntimeError(f"{item.key}: {found}")
        await writer.write([item.intent])

    async def money_call(self, i: int, item: Prepared) -> None:
        if self.client is None:
            return
        if self._raw:
            response = await self.client._http.post(
                wire.PATHS[wire.Operation.CHARGE], data=self._raw[i], headers=self._headers
            )
            status = orjson.loads(response.content).get("status")
            release(response)
        else:
            answer = await self.client.charge(
                msisdn=item.command.msisdn, amount=item.command.amount, trace_number=item.command.trace_number
            )
            status = answer.response_code if answer.call_class is not CallClass.SUCCEEDED else "PROCESSED"
        if status != "PROCESSED":
            raise RuntimeError(f"{item.command.trace_number}: {status}")

    async def outcome(self, item: Prepared) -> None:
        if self.writers is not None:
            await self.writers.of(item.partition).write(
                item.outcome, done_offset=item.offset, stream=str(item.partition)
            )


async def leg(
    cfg: StageConfig, which: str, api_url: str, journal_topic: str, results_topic: str
) -> dict[str, Any]:
    commands = prepare(cfg, journal_topic, results_topic)
    settings = load_settings(
        kafka_bootstrap_servers=cfg.bootstrap,
        group_id=cfg.group,
        claims_topic=cfg.claims,
        api_base_url=api_url,
        http_transport="aiohttp",
        max_in_flight=cfg.in_flight,
        **SANDBOX_API_IDENTITY,
    )
    io = Leg(cfg, which, settings)
    latencies_ms: dict[int, float] = {}  # by the command's place in the run
    window = asyncio.Semaphore(cfg.in_flight)
    meter = Meter()

    async def one(i: int, item: Prepared, started: float) -> None:
        try:
            await io.claim_and_intent(item)
            await io.money_call(i, item)
            await io.outcome(item)
            latencies_ms[i] = (time.monotonic() - started) * 1000
        except Exception as exc:  # noqa: BLE001 - a benchmark reports any failure of the measured path
            io.failure.append(repr(exc))
        finally:
            window.release()

    tasks = []
    try:
        await io.start(commands)
        print("READY", flush=True)
        meter.start()
        for i, item in enumerate(commands):
            due = time.monotonic()
            if cfg.rate_per_s:  # paced: the command's latency counts from when it was due
                due = (meter.started or 0.0) + i / cfg.rate_per_s
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
            await window.acquire()
            if io.failure:
                break
            tasks.append(asyncio.create_task(one(i, item, due)))
        await asyncio.gather(*tasks)
        meter.end()
        if io.failure:
            raise RuntimeError(f"the {which} leg failed: {io.failure[0]}")
        figures = meter.figures(len(latencies_ms), io.writers.transactions if io.writers else 0)
        figures["command_ms"] = percentiles_ms(list(latencies_ms.values()))
        low, high = steady_window(list(range(len(commands))))  # without the load's onset and its end
        figures["command_steady_ms"] = percentiles_ms(
            [ms for i, ms in latencies_ms.items() if low <= i <= high]
        )
        return figures
    finally:
        for task in tasks:
            task.cancel()
        await io.stop()


def child_main(raw: str) -> int:
    import logging

    import uvloop

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    spec = orjson.loads(raw)
    cfg = StageConfig(**spec.pop("cfg"))
    figures = uvloop.run(leg(cfg, **spec))  # the worker's default loop (ECASH_EVENT_LOOP)
    print("RESULT " + orjson.dumps(figures).decode(), flush=True)
    return 0


# --- the driver -----------------------------------------------------------------------------------------


@dataclass
class Run:
    leg: str
    commands: int
    figures: dict[str, Any]
    process_ms: float
    broker_ms: float | None
    sandbox_ms: float | None
    paced: bool

    @property
    def machine_ms(self) -> float | None:
        """The process's, the broker's and the sandbox's CPU per command; None if one was not measured
        (``--bootstrap`` without ``--broker-pid``)."""
        if self.broker_ms is None or self.sandbox_ms is None:
            return None
        return self.process_ms + self.broker_ms + self.sandbox_ms


def per_command_ms(before: float | None, after: float | None, count: int) -> float | None:
    if before is None or after is None or not count:
        return None
    return round((after - before) * 1000 / count, 3)


async def run_leg(
    args: argparse.Namespace, bootstrap: str, broker_pid: int | None, which: str, work: Path
) -> Run:
    run_id = uuid.uuid4().hex[:8]
    names = {k: f"floor-{run_id}.{k}" for k in ("commands", "claims", "journal", "results")}
    await ensure_topics(
        bootstrap,
        [
            TopicSpec(names["commands"], PARTITIONS, 1, {}),
            TopicSpec(names["results"], PARTITIONS, 1, {}),
            claims_topic_spec(names["claims"], PARTITIONS, 1, 86_400.0),
            journal_topic_spec(names["journal"], PARTITIONS, 1, 86_400.0),
        ],
        client_kwargs={},
    )
    cfg = StageConfig(
        stage=f"floor-{which}",
        bootstrap=bootstrap,
        source=names["commands"],
        by_trace="unused",
        claims=names["claims"],
        group=f"floor-{run_id}",
        commands=args.commands,
        msisdns=args.msisdns,
        rate_per_s=args.rate,
        in_flight=args.in_flight,
        producers="partition",
        fetch_wait_ms=500,
        seed=args.seed,
    )
    sandbox = await start_sandbox(args.latency_ms, work / f"sandbox-{which}-{run_id}.log")
    log_path = work / f"{which}-{run_id}.log"
    spec = {
        "cfg": asdict(cfg),
        "which": which,
        "api_url": sandbox.base_url,
        "journal_topic": names["journal"],
        "results_topic": names["results"],
    }
    try:
        with log_path.open("wb") as stderr:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.promise_floor",
                "--child",
                orjson.dumps(spec).decode(),
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                cwd=REPO_ROOT,
            )
        assert child.stdout is not None
        try:
            line = await asyncio.wait_for(child.stdout.readline(), 120.0)
            if line.strip() != b"READY":
                raise RuntimeError(f"{which}: the leg did not start (log: {log_path}): {line!r}")
            broker0, sandbox0 = cpu_s(broker_pid), cpu_s(sandbox.pid)
            try:
                line = await asyncio.wait_for(child.stdout.readline(), args.timeout_s)
            except TimeoutError:
                raise RuntimeError(
                    f"{which}: no result in {args.timeout_s:.0f} s (log: {log_path})"
                ) from None
            broker1, sandbox1 = cpu_s(broker_pid), cpu_s(sandbox.pid)
            if not line.startswith(b"RESULT "):
                raise RuntimeError(f"{which}: no result (log: {log_path}): {line!r}")
            figures: dict[str, Any] = orjson.loads(line[len(b"RESULT ") :])
            await asyncio.wait_for(child.wait(), 60.0)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
    finally:
        await sandbox.stop()
    count = int(figures["count"])
    if which in ("kafka", "floor"):  # what a reader sees: each command's records once, all committed
        for name in ("results", "journal", "claims"):
            keys: set[bytes] = set()
            figures[f"{name}_read"] = await read_topic(bootstrap, names[name], PARTITIONS, keys_into(keys))
            figures[f"{name}_keys"] = len(keys)
    return Run(
        leg=which,
        commands=count,
        figures=figures,
        process_ms=round(float(figures["cpu_s"]) * 1000 / count, 3),
        broker_ms=per_command_ms(broker0, broker1, count),
        sandbox_ms=per_command_ms(sandbox0, sandbox1, count),
        paced=args.rate is not None,
    )


def keys_into(keys: set[bytes]) -> Callable[[Any], None]:
    return lambda record: keys.add(record.key)


def written_once(run: Run) -> bool:
    """Each command's records, committed once: its result, its intent and outcome under one journal key,
    its claim and its final claim under one claims key."""
    if "results_read" not in run.figures:
        return True
    f, n = run.figures, run.commands
    return bool(
        f["results_read"] == n
        and f["journal_read"] == f["claims_read"] == 2 * n
        and f["journal_keys"] == f["claims_keys"] == n
    )


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(runs: list[Run], cores: int) -> str:
    lines = [
        f"{'leg':<6} {'cmds':>6} {'cmd/s':>7} {'process ms':>10} {'broker ms':>9} {'sandbox ms':>10} "
        f"{'machine ms':>10} {f'{cores}-core ceiling':>15} {'txn/1k':>6} {'command p50/p99 ms':>18} "
        f"{'steady p50/p99':>15}"
    ]
    for r in runs:
        # what the machine allows if every command cost this much: at full speed only (a paced run's
        # commands cost more each: their transactions are smaller)
        ceiling = f"{cores * 1000 / r.machine_ms:,.0f}/s" if r.machine_ms and not r.paced else "-"
        txn = r.figures["transactions"] * 1000 / r.commands if r.commands else 0.0
        lat = r.figures["command_ms"]
        latency = f"{fmt(lat['p50'], 1)}/{fmt(lat['p99'], 1)}"
        steady = r.figures["command_steady_ms"]
        steady_latency = f"{fmt(steady['p50'], 1)}/{fmt(steady['p99'], 1)}"
        lines.append(
            f"{r.leg:<6} {r.commands:>6} {fmt(r.figures['throughput_per_s'], 0):>7} {fmt(r.process_ms):>10} "
            f"{fmt(r.broker_ms):>9} {fmt(r.sandbox_ms):>10} {fmt(r.machine_ms):>10} "
            f"{ceiling:>15} {fmt(txn, 0):>6} {latency:>18} {steady_latency:>15}"
        )
    lines.append(
        "CPU per command (ms): the leg's process, the broker's and the sandbox's over the same time; the "
        "ceiling (at full speed) is this machine's cores over their sum; steady: the commands between the "
        "run's 10th and 90th percentile"
    )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="ecash-floor-"))
    work.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    runs = []
    with broker(args, work) as (bootstrap, broker_pid):
        for which in args.leg or LEGS:
            runs.append(await run_leg(args, bootstrap, broker_pid, which, work))
    print(table(runs, cores))
    if args.json_out:
        report = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "argv": sys.argv,
            "cores": cores,
            "runs": [
                {**asdict(r), "machine_ms": r.machine_ms, "written_once": written_once(r)} for r in runs
            ],
        }
        args.json_out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0 if all(r.commands == args.commands and written_once(r) for r in runs) else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.promise_floor", description=__doc__.split("\n")[0])
    parser.add_argument("--leg", action="append", choices=LEGS, help="repeatable (default: all four)")
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--msisdns", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=256, help="commands at a time (ECASH_MAX_IN_FLIGHT)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the sandbox's API latency (default 0)")
    parser.add_argument(
        "--rate", type=float, help="commands/s started (default: as fast as --in-flight allows)"
    )
    parser.add_argument("--bootstrap", help="an existing broker (default: a scratch one on free ports)")
    parser.add_argument("--broker-pid", type=int, help="with --bootstrap: its pid, for the broker's CPU")
    parser.add_argument("--work-dir", type=Path, help="the legs' logs (default: a temp dir)")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--timeout-s", type=float, default=600.0, help="per leg (default 600)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        return child_main(args.child)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
