"""What one trace-number claim costs next to one repartition hop (issue 14), each alone on a scratch broker.

    python -m bench.repartition_hop                                          # 30,000 commands, ~5 min
    python -m bench.repartition_hop --stage hop --producers process          # B with one producer per process
    python -m bench.repartition_hop --commands 300 --rate 200 --json-out x.json   # a smoke run

The two ways to make one trace number one payment across the deployment, each at the least it can cost:

- ``hop`` (B, a repartition stage): N commands keyed by MSISDN on a 12-partition topic; ONE forwarder
  process consumes them (``read_committed``, in a consumer group) and forwards each, keyed by its trace
  number, to a 12-partition by-trace topic, exactly once: produce, ``send_offsets_to_transaction``,
  commit. It parses each command only for its trace number: no dedupe, no outcome fed back, so a lower
  bound for B.
- ``claim`` (A, the claims topic): per command one claim record (the worker's own ``Claim`` and
  ``claim_record``) written through the worker's ``PartitionWriter`` of the command's partition, then a
  wait until a separate ``read_committed`` reader of the whole claims topic (fetch wait 10 ms, as the
  worker's) has read it back. ``claim`` reads it with a plain consumer (a lower bound for A);
  ``claim-index`` with the worker's ``ClaimsIndex`` (SQLite store, then ``standing``), as the worker does.

Both write through ``worker.pipeline.ownership.PartitionWriter``: a transaction every 20 ms or at 500
records. By default one transactional producer per input partition (``transactional_id =
<group>.<topic>.<p>``): aiokafka 0.14's ``send_offsets_to_transaction`` takes a group id and no consumer
group metadata (no KIP-447), so a producer per process could not be fenced when a rebalance moves a
partition away, and a stalled forwarder could still commit records and offsets for a partition another
one now owns. That is Kafka Streams' first exactly-once design, and the worker's. ``--producers process``
measures one producer per process (fewer, larger transactions; not safe with aiokafka 0.14).

Each stage runs in a process of its own; its CPU (``getrusage``) counts from its first command to its
last. Modes: ``paced`` (``--rate``, commands arrive at that rate while the stage runs) and ``full`` (for
``hop`` a pre-loaded backlog; for ``claim``, ``--in-flight`` commands at a time, the worker's
``ECASH_MAX_IN_FLIGHT``). Added latency:

- ``claim``: from the claim's write to its read-back, in the claiming process (monotonic): one transaction
  and one fetch by the claims reader.
- ``hop``, paced: from the source record's LogAppendTime to the commit of its forward, in the forwarder
  (the wall clock; the broker is on this machine): one fetch by the forwarder and one transaction. The
  next stage's fetch of the forwarded record is left out: it replaces the worker's fetch of the command.
  ``hop``, full speed: from the forwarder's fetch to the commit (the backlog's wait left out). The JSON
  also has the forwarded record's LogAppendTime minus the source record's (``append_to_append_ms``, read
  back after the run with each command counted once), which leaves out the commit.

In paced ``claim`` runs this process produces the same commands to the source topic at the same rate (the
claimer does not read them), so the broker carries the same produce load as in paced ``hop`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import logging
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.figures import percentiles_ms
from bench.processes import REPO_ROOT
from bench.reporting import machine
from bench.sampling import cpu_s
from bench.scenarios import Scenario
from bench.scenarios import workload as run_workload
from bench.topics import produce, read_topic
from worker.clock import SystemClock
from worker.contracts import Command
from worker.core.fingerprint import fingerprint
from worker.kafka.admin import TopicSpec, claims_topic_spec, ensure_topics
from worker.pipeline.claims import claim_key, claim_record, claims_partition, new_claim, standing
from worker.pipeline.claims_index import ClaimsIndex, ClaimsStore
from worker.pipeline.ownership import OutRecord, PartitionWriter, WriterPolicy, transactional_id

STAGES = ("hop", "claim", "claim-index")
MODES = ("paced", "full")
PARTITIONS = 12
# The worker's claims follower's fetch wait when these designs were measured (docs/performance.md, "What a
# claim costs"); the worker's is now 500 ms, with its offsets asked apart (worker/kafka/clients.py).
CLAIMS_FETCH_WAIT_MS = 10
log = logging.getLogger("bench.repartition_hop")


@dataclass(frozen=True)
class StageConfig:
    """What a stage process needs (passed as JSON on its command line)."""

    stage: str
    bootstrap: str
    source: str
    by_trace: str
    claims: str
    group: str
    commands: int
    msisdns: int
    rate_per_s: float | None
    in_flight: int
    producers: str
    fetch_wait_ms: int = 500
    seed: int = 7


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def workload(commands: int, msisdns: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(key = MSISDN, JSON command): bench/scenarios.py's commands, alternating charge and credit of 100."""
    return list(run_workload(Scenario("hop", 0.0, commands=commands, msisdns=msisdns), seed))


# --- the writers: the worker's PartitionWriter, one per input partition or one per process -------------


class Writers:
    """``PartitionWriter``s over ``topic``'s partitions: the one that writes for input partition ``p``."""

    def __init__(
        self,
        cfg: StageConfig,
        topic: str,
        on_lost: Callable[[int, str], None],
        *,
        producer_factory: Callable[[str], AIOKafkaProducer] | None = None,
        policy: WriterPolicy | None = None,
    ) -> None:
        """``producer_factory`` and ``policy``: the producer's settings and the writer's policy when these
        designs were measured, unless given (``bench.promise_floor`` gives the worker's current ones)."""
        self._cfg = cfg
        self._topic = topic
        self._done: dict[int, int] = {}  # input partition -> next offset to commit
        self._producer_factory = producer_factory or self._measured_producer
        self._policy = policy or WriterPolicy()
        self.per_partition = cfg.producers == "partition"
        owners = range(PARTITIONS) if self.per_partition else (-1,)
        self._writers = {p: self._writer(p, on_lost) for p in owners}

    def _measured_producer(self, tid: str) -> AIOKafkaProducer:
        cfg = self._cfg
        return AIOKafkaProducer(  # the worker's producer settings when the designs were measured
            bootstrap_servers=cfg.bootstrap,
            transactional_id=tid,
            transaction_timeout_ms=60_000,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            max_batch_size=256 * 1024,
            request_timeout_ms=30_000,
            client_id=f"bench-{cfg.stage}",
        )

    def _writer(self, p: int, on_lost: Callable[[int, str], None]) -> PartitionWriter:
        cfg = self._cfg
        txn_id = transactional_id(cfg.group, self._topic, p) if p >= 0 else f"{cfg.group}.{self._topic}.all"

        def mark_done(stream: str, offset: int) -> None:
            partition = int(stream)
            self._done[partition] = max(self._done.get(partition, 0), offset + 1)

        def committable() -> dict[str, int]:
            if p >= 0:
                return {str(p): self._done[p]} if p in self._done else {}
            return {str(q): offset for q, offset in self._done.items()}

        return PartitionWriter(
            partition=p,
            txn_id=txn_id,
            group_id=cfg.group,
            producer_factory=self._producer_factory,
            clock=SystemClock(),
            policy=self._policy,
            mark_done=mark_done,
            committable=committable,
            offset_key=lambda stream: TopicPartition(self._topic, int(stream)),
            on_lost=on_lost,
        )

    def of(self, partition: int) -> PartitionWriter:
        return self._writers[partition if self.per_partition else -1]

    async def start(self) -> None:
        await asyncio.gather(*(w.start() for w in self._writers.values()))

    async def close(self) -> None:
        await asyncio.gather(*(w.close(flush=False, timeout_s=5.0) for w in self._writers.values()))

    @property
    def transactions(self) -> int:
        return sum(w.transactions for w in self._writers.values())


@dataclass
class Meter:
    """The stage's CPU and wall time from its first command to its last."""

    started: float | None = None
    cpu0: float = 0.0
    ended: float | None = None
    cpu1: float = 0.0
    wall_start: float = 0.0
    wall_end: float = 0.0

    def start(self) -> None:
        if self.started is None:
            self.started, self.cpu0, self.wall_start = time.monotonic(), cpu_now(), time.time()

    def end(self) -> None:
        self.ended, self.cpu1, self.wall_end = time.monotonic(), cpu_now(), time.time()

    def figures(self, count: int, transactions: int) -> dict[str, Any]:
        wall = (self.ended or 0.0) - (self.started or 0.0)
        cpu = self.cpu1 - self.cpu0
        return {
            "count": count,
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3),
            "throughput_per_s": round(count / wall, 1) if wall > 0 else None,
            "cpu_ms_per_1k": round(cpu * 1000 / count * 1000, 1) if count else None,
            "transactions": transactions,
            "wall_start": self.wall_start,
            "wall_end": self.wall_end,
        }


# --- B: the forwarder -----------------------------------------------------------------------------------


async def forward(cfg: StageConfig) -> dict[str, Any]:  # noqa: C901 - the repartition stage a worker would need, kept whole so it reads as one measurement
    """Consume the MSISDN-keyed commands in a group, forward each keyed by trace number, exactly once."""
    failure: list[str] = []
    writers = Writers(cfg, cfg.source, lambda p, why: failure.append(f"{p}: {why}"))
    await writers.start()  # one member: it is assigned every partition, so every producer starts first
    consumer = AIOKafkaConsumer(  # the worker's command consumer, less what a bench needs not
        bootstrap_servers=cfg.bootstrap,
        group_id=cfg.group,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=1024 * 1024,
        fetch_max_wait_ms=cfg.fetch_wait_ms,
        client_id="bench-forwarder",
    )
    await consumer.start()
    consumer.subscribe([cfg.source])
    meter = Meter()
    forwarded = 0
    uncommitted: dict[int, int] = {}
    paused: set[TopicPartition] = set()
    finished = asyncio.Event()
    tasks: set[asyncio.Task[float]] = set()

    from_append_ms: list[float] = []  # source record's LogAppendTime -> its forward committed
    from_fetch_ms: list[float] = []  # the forwarder's fetch -> committed

    def committed(
        tp: TopicPartition, appended_ms: list[int], fetched_ms: float, task: asyncio.Task[float]
    ) -> None:
        nonlocal forwarded
        tasks.discard(task)
        if task.cancelled() or task.exception() is not None:
            failure.append(repr(task.exception()))
            finished.set()
            return
        now_ms = time.time() * 1000
        from_append_ms.extend(now_ms - t for t in appended_ms)
        from_fetch_ms.extend(now_ms - fetched_ms for _ in appended_ms)
        n = len(appended_ms)
        forwarded += n
        uncommitted[tp.partition] -= n
        if tp in paused and uncommitted[tp.partition] < WriterPolicy.max_batch_records:
            paused.discard(tp)
            consumer.resume(tp)
        if forwarded >= cfg.commands:
            meter.end()
            finished.set()

    try:
        deadline = time.monotonic() + 60.0
        while not consumer.assignment():  # the group join runs in aiokafka's coordinator task
            if time.monotonic() > deadline:
                raise RuntimeError("the forwarder was assigned no partition within 60 s")
            await asyncio.sleep(0.05)
        print("READY", flush=True)
        while not finished.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=WriterPolicy.max_batch_records)
            if not batch:
                continue
            meter.start()
            fetched_ms = time.time() * 1000
            for tp, messages in batch.items():
                records = [
                    OutRecord(
                        cfg.by_trace,
                        str(orjson.loads(m.value)["trace_number"]).encode(),
                        m.value,
                        None,  # the producer's default partitioner: murmur2 of the key, as Kafka's
                        (("src", f"{tp.partition}:{m.offset}:{m.timestamp}".encode()),),
                    )
                    for m in messages
                ]
                uncommitted[tp.partition] = uncommitted.get(tp.partition, 0) + len(records)
                write = writers.of(tp.partition).write(
                    records, done_offset=messages[-1].offset, stream=str(tp.partition)
                )
                task = asyncio.create_task(write)
                tasks.add(task)
                appended = [int(m.timestamp) for m in messages]
                task.add_done_callback(functools.partial(committed, tp, appended, fetched_ms))
                if uncommitted[tp.partition] >= WriterPolicy.max_batch_records and tp not in paused:
                    paused.add(tp)
                    consumer.pause(tp)
        if failure:
            raise RuntimeError(f"the forwarder failed: {failure[0]}")
        figures = meter.figures(forwarded, writers.transactions)
        figures["append_to_committed_ms"] = percentiles_ms(from_append_ms)
        figures["fetch_to_committed_ms"] = percentiles_ms(from_fetch_ms)
        return figures
    finally:
        for task in list(tasks):
            task.cancel()
        await consumer.stop()
        await writers.close()


# --- A: the claim ---------------------------------------------------------------------------------------


def claims_consumer(cfg: StageConfig) -> AIOKafkaConsumer:
    """The worker's claims follower's consumer as it was measured (worker/service.py): the whole topic."""
    return AIOKafkaConsumer(
        bootstrap_servers=cfg.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
        isolation_level="read_committed",
        fetch_max_wait_ms=CLAIMS_FETCH_WAIT_MS,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
        client_id=f"bench-{cfg.stage}-reader",
    )


class PlainReader:
    """A read_committed consumer of the whole claims topic: wakes the claim waiting for each record."""

    def __init__(self, cfg: StageConfig) -> None:
        self._cfg = cfg
        self._consumer = claims_consumer(cfg)
        self._waiting: dict[bytes, asyncio.Future[None]] = {}
        self._index: dict[str, list[bytes]] = {}  # trace number -> claim keys: the least index there is
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        tps = [TopicPartition(self._cfg.claims, p) for p in range(PARTITIONS)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    def expect(self, key: bytes) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[key] = waiter
        return waiter

    async def _follow(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for messages in batch.values():
                for m in messages:
                    trace = str(orjson.loads(m.value)["trace_number"])
                    self._index.setdefault(trace, []).append(m.key)
                    waiter = self._waiting.pop(m.key, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)


async def claim(cfg: StageConfig) -> dict[str, Any]:  # noqa: C901 - the worker's claim path, copied inline so the benchmark measures exactly it
    """Per command: write its claim through its partition's writer; wait until the reader has it."""
    commands = []
    for key, value in workload(cfg.commands, cfg.msisdns, cfg.seed):  # parsed before the clock starts
        command = Command.model_validate_json(value)
        commands.append((command, fingerprint(command), claims_partition(key.decode(), PARTITIONS)))
    failure: list[str] = []
    commands_topic = cfg.source
    writers = Writers(cfg, commands_topic, lambda p, why: failure.append(f"{p}: {why}"))
    await writers.start()
    plain: PlainReader | None = None
    index: ClaimsIndex | None = None
    if cfg.stage == "claim":
        plain = PlainReader(cfg)
        await plain.start()
    else:
        index = ClaimsIndex(
            topic=cfg.claims,
            open_store=lambda: ClaimsStore(None),
            consumer_factory=lambda: claims_consumer(cfg),
            offsets_consumer_factory=lambda: AIOKafkaConsumer(
                bootstrap_servers=cfg.bootstrap, group_id=None, isolation_level="read_committed"
            ),
            delete_retention_ms=86_400_000,
        )
        await index.start(timeout_s=30.0)
    latencies_ms: list[float] = []
    offsets = [0] * PARTITIONS
    window = asyncio.Semaphore(cfg.in_flight)
    meter = Meter()

    async def one(command: Command, print_: str, partition: int, offset: int) -> None:
        try:
            started = time.monotonic()
            item = new_claim(command, print_, topic=commands_topic, partition=partition, offset=offset)
            record = claim_record(cfg.claims, item, PARTITIONS)
            if plain is not None:
                read_back = plain.expect(item.key.encode())
                await writers.of(partition).write([record])
                await read_back
            else:
                assert index is not None
                key = claim_key(commands_topic, partition, offset)
                await writers.of(partition).write([record])
                while not index.has(key):  # as the worker does (pipeline/claiming.py)
                    await index.wait_for_key(key, lambda: False)
                found = standing(key, index.entries(command.trace_number))
                if found is None or found.kind != "owner":
                    raise RuntimeError(f"{key}: {found}")
            latencies_ms.append((time.monotonic() - started) * 1000)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports any failure of the measured path and goes on
            failure.append(repr(exc))
        finally:
            window.release()

    print("READY", flush=True)
    tasks = []
    try:
        meter.start()
        for i, (command, print_, partition) in enumerate(commands):
            if cfg.rate_per_s:
                ahead_s = (meter.started or 0.0) + i / cfg.rate_per_s - time.monotonic()
                if ahead_s > 0:
                    await asyncio.sleep(ahead_s)
            await window.acquire()
            if failure:
                break
            tasks.append(asyncio.create_task(one(command, print_, partition, offsets[partition])))
            offsets[partition] += 1
        await asyncio.gather(*tasks)
        meter.end()
        if failure:
            raise RuntimeError(f"the claims failed: {failure[0]}")
        figures = meter.figures(len(latencies_ms), writers.transactions)
        figures["added_ms"] = percentiles_ms(latencies_ms)
        return figures
    finally:
        for task in tasks:
            task.cancel()
        if plain is not None:
            await plain.stop()
        if index is not None:
            await index.stop()
        await writers.close()


def child_main(raw: str) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries while new topics elect leaders
    cfg = StageConfig(**orjson.loads(raw))
    figures = asyncio.run(forward(cfg) if cfg.stage == "hop" else claim(cfg))
    print("RESULT " + orjson.dumps(figures).decode(), flush=True)
    return 0


# --- the driver -----------------------------------------------------------------------------------------


@dataclass
class Forwarded:
    """The by-trace topic read after a hop run (read_committed): each command forwarded once?"""

    sources: set[tuple[int, int]] = field(default_factory=set)
    records: int = 0
    append_to_append_ms: list[float] = field(default_factory=list)

    def add(self, record: Any) -> None:
        partition, offset, appended_ms = dict(record.headers)["src"].decode().split(":")
        self.records += 1
        self.sources.add((int(partition), int(offset)))
        self.append_to_append_ms.append(float(int(record.timestamp) - int(appended_ms)))


@dataclass
class Run:
    stage: str
    mode: str
    producers: str
    commands: int
    rate_per_s: float | None
    in_flight: int
    figures: dict[str, Any]
    broker_cpu_ms_per_1k: float | None
    added_ms: dict[str, float | None]
    latency_measure: str


async def run_stage(
    args: argparse.Namespace, bootstrap: str, broker_pid: int | None, stage: str, mode: str, work: Path
) -> Run:
    run_id = uuid.uuid4().hex[:8]
    names = {k: f"hop-{run_id}.{k}" for k in ("commands", "by-trace", "claims")}
    stamped = {"message.timestamp.type": "LogAppendTime"}
    specs = [
        TopicSpec(names["commands"], PARTITIONS, 1, stamped),
        TopicSpec(names["by-trace"], PARTITIONS, 1, stamped),
        claims_topic_spec(names["claims"], PARTITIONS, 1, 86_400.0),
    ]
    await ensure_topics(bootstrap, specs, client_kwargs={})
    rate = args.rate if mode == "paced" else None
    cfg = StageConfig(
        stage=stage,
        bootstrap=bootstrap,
        source=names["commands"],
        by_trace=names["by-trace"],
        claims=names["claims"],
        group=f"hop-{run_id}",
        commands=args.commands,
        msisdns=args.msisdns,
        rate_per_s=rate if stage != "hop" else None,
        in_flight=args.in_flight,
        producers=args.producers,
        fetch_wait_ms=args.forwarder_fetch_wait_ms,
        seed=args.seed,
    )
    messages = workload(args.commands, args.msisdns, args.seed)
    if stage == "hop" and rate is None:
        await produce(bootstrap, cfg.source, iter(messages))  # the backlog, before the forwarder starts
    log_path = work / f"{stage}-{mode}-{run_id}.log"
    with log_path.open("wb") as stderr:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.repartition_hop",
            "--child",
            orjson.dumps(asdict(cfg)).decode(),
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            cwd=REPO_ROOT,
        )
    assert child.stdout is not None
    producing: asyncio.Task[int] | None = None
    timeout_s = args.timeout_s or max(300.0, args.commands / (rate or 200.0) * 3)
    try:
        line = await asyncio.wait_for(child.stdout.readline(), 120.0)
        if line.strip() != b"READY":
            raise RuntimeError(f"{stage}: the stage did not start (log: {log_path}): {line!r}")
        broker_cpu0 = cpu_s(broker_pid)
        if rate is not None:
            producing = asyncio.create_task(produce(bootstrap, cfg.source, iter(messages), rate))
        line = await asyncio.wait_for(child.stdout.readline(), timeout_s)
        broker_cpu1 = cpu_s(broker_pid)
        if not line.startswith(b"RESULT "):
            raise RuntimeError(f"{stage}: no result (log: {log_path}): {line!r}")
        figures: dict[str, Any] = orjson.loads(line[len(b"RESULT ") :])
        await asyncio.wait_for(child.wait(), 60.0)
        if producing is not None:
            await producing
    finally:
        if producing is not None and not producing.done():
            producing.cancel()
        if child.returncode is None:
            child.kill()
            await child.wait()
    count = int(figures["count"])
    broker = None
    if broker_cpu0 is not None and broker_cpu1 is not None and count:
        broker = round((broker_cpu1 - broker_cpu0) * 1000 / count * 1000, 1)
    if stage == "hop":
        forwarded = Forwarded()
        await read_topic(bootstrap, cfg.by_trace, PARTITIONS, forwarded.add)
        figures["forwarded_read"] = forwarded.records
        figures["forwarded_distinct"] = len(forwarded.sources)
        figures["append_to_append_ms"] = percentiles_ms(forwarded.append_to_append_ms)
        measure = "append_to_committed_ms" if mode == "paced" else "fetch_to_committed_ms"
        added = figures[measure]
    else:
        measure = "write_to_read_back_ms"
        added = figures["added_ms"]
    return Run(stage, mode, args.producers, count, rate, args.in_flight, figures, broker, added, measure)


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(runs: list[Run]) -> str:
    header = (
        f"{'stage':<12} {'producers':<9} {'mode':<11} {'cmds':>6} {'cmd/s':>7} {'CPU ms/1k':>9} "
        f"{'broker ms/1k':>12} {'txn/1k':>6} {'added p50/p99 ms':>16}  latency measured as"
    )
    lines = [header]
    for r in runs:
        mode = f"{fmt(r.rate_per_s)}/s" if r.rate_per_s else "full"
        txn = r.figures["transactions"] * 1000 / r.commands if r.commands else None
        added = f"{fmt(r.added_ms['p50'], 1)}/{fmt(r.added_ms['p99'], 1)}"
        lines.append(
            f"{r.stage:<12} {r.producers:<9} {mode:<11} {r.commands:>6} "
            f"{fmt(r.figures['throughput_per_s']):>7} {fmt(r.figures['cpu_ms_per_1k']):>9} "
            f"{fmt(r.broker_cpu_ms_per_1k):>12} {fmt(txn):>6} {added:>16}  {r.latency_measure}"
        )
    return "\n".join(lines)


def ratios(runs: list[Run]) -> list[dict[str, Any]]:
    """hop / claim per mode: CPU per 1,000 (the stage's and the broker's) and added latency."""
    out = []
    for mode in MODES:
        hop = next((r for r in runs if r.stage == "hop" and r.mode == mode), None)
        for claim_stage in ("claim", "claim-index"):
            a = next((r for r in runs if r.stage == claim_stage and r.mode == mode), None)
            if hop is None or a is None:
                continue

            def ratio(b: float | None, c: float | None) -> float | None:
                return round(b / c, 2) if b is not None and c else None

            out.append(
                {
                    "mode": mode,
                    "against": claim_stage,
                    "cpu": ratio(hop.figures["cpu_ms_per_1k"], a.figures["cpu_ms_per_1k"]),
                    "broker_cpu": ratio(hop.broker_cpu_ms_per_1k, a.broker_cpu_ms_per_1k),
                    "added_p50": ratio(hop.added_ms["p50"], a.added_ms["p50"]),
                    "added_p99": ratio(hop.added_ms["p99"], a.added_ms["p99"]),
                }
            )
    return out


@contextlib.contextmanager
def broker(args: argparse.Namespace, work: Path) -> Any:
    if args.bootstrap:
        yield args.bootstrap, args.broker_pid
        return
    from ecash_dev.kafka import scratch_broker

    local = scratch_broker(work / "kafka")
    local.start()
    try:
        yield local.bootstrap, local.pid()
    finally:
        local.stop()


async def main_async(args: argparse.Namespace) -> int:
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="ecash-hop-"))
    work.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    with broker(args, work) as (bootstrap, broker_pid):
        for stage in args.stage or STAGES:
            for mode in args.mode or MODES:
                runs.append(await run_stage(args, bootstrap, broker_pid, stage, mode, work))
    found = ratios(runs)
    print(table(runs))
    for r in found:
        print(
            f"{r['mode']}: hop / {r['against']}: CPU {fmt(r['cpu'], 2)}x, "
            f"broker CPU {fmt(r['broker_cpu'], 2)}x, "
            f"added latency p50 {fmt(r['added_p50'], 2)}x, p99 {fmt(r['added_p99'], 2)}x"
        )
    if args.json_out:
        report = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "argv": sys.argv,
            "runs": [asdict(r) for r in runs],
            "ratios": found,
        }
        args.json_out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    forwarded_once = all(
        r.figures["forwarded_read"] == r.figures["forwarded_distinct"] == args.commands
        for r in runs
        if r.stage == "hop"
    )
    return 0 if forwarded_once and all(r.commands == args.commands for r in runs) else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.repartition_hop", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--stage", action="append", choices=STAGES, help="repeatable (default: all)")
    parser.add_argument("--mode", action="append", choices=MODES, help="repeatable (default: both)")
    parser.add_argument("--commands", type=int, default=30_000)
    parser.add_argument("--msisdns", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500.0, help="commands/s in paced mode (default 500)")
    parser.add_argument("--in-flight", type=int, default=256, help="claims at a time (ECASH_MAX_IN_FLIGHT)")
    parser.add_argument("--producers", choices=("partition", "process"), default="partition")
    parser.add_argument(
        "--forwarder-fetch-wait-ms",
        type=int,
        default=500,
        help="the forwarder's fetch_max_wait_ms (default 500: aiokafka's, as the worker's command consumer)",
    )
    parser.add_argument("--bootstrap", help="an existing broker (default: a scratch one on free ports)")
    parser.add_argument("--broker-pid", type=int, help="with --bootstrap: its pid, for the broker's CPU")
    parser.add_argument("--work-dir", type=Path, help="the stage processes' logs (default: a temp dir)")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--timeout-s", type=float, help="per run (default: max(300, 3 x N / rate) s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        return child_main(args.child)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # "not leader" while new topics elect leaders
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
