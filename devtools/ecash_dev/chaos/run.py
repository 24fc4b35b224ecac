"""``ecash-worker chaos`` (``python -m ecash_dev.chaos``): a chaos run anyone can repeat, and its verdict.

It starts a Kafka broker of its own (free ports, data in the work directory; or uses ``--bootstrap``),
the sandbox as a process with faults on about 12% of money calls (every ambiguous kind), ~5% token expiry
and status lag, and ``--workers`` worker processes in one group. About 1.5% of commands are sent again to
another partition, and 1.5% have their trace number reused on another wallet (``ecash_dev.chaos.plan``).
While it sends the commands (``--rate`` per second) it kills a worker with SIGKILL every
``--seconds-between-kills`` and starts it again, and restarts (crashes) the broker once. Then it waits for
every result and compares the results topic with the sandbox's ledger (``ecash_dev.chaos.agreement``).
Exit 0 only if no trace number moved money twice, no command went unanswered, no result disagrees with the
ledger and no trace number had two commands acted on.

    python -m ecash_dev.chaos --commands 20000 --msisdns 2000 --workers 3 --seed 1 --json-out chaos.json

Everything it starts is stopped on exit, on failure and on Ctrl-C. The work directory keeps the logs
(``worker-N.log``, ``sandbox.log``), ``summary.json`` and, if something disagreed, ``evidence.json``.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ecash_dev.chaos.agreement import Agreement
from ecash_dev.chaos.plan import ChaosOptions, PlannedMessage, fault_rules, plan_messages, worker_settings
from ecash_dev.chaos.report import collect_evidence, ledger_check, summary_table
from ecash_dev.kafka import (
    BrokerError,
    LocalKafka,
    scratch_broker,
)
from ecash_dev.stack import (
    CommandProducer,
    ResultTail,
    SandboxProcess,
    StackError,
    WorkerProcess,
    cancelled_by_sigterm,
    command_bytes,
)
from worker import commandline
from worker.clock import Clock, SystemClock
from worker.commandline import Command, arguments, help_text
from worker.kafka.admin import ensure_topics, worker_topic_specs
from worker.ops.command import quiet_kafka_logs
from worker.settings import Settings, load_settings

Say = Callable[[str], None]
BROKER_DOWN_S = 3.0
RESTART_DELAY_S = 1.0
SETTLE_S = 3.0  # after the last result: time for a duplicate that should not exist to show up


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Timeline:
    """What the chaos did, and when (seconds since the start)."""

    clock: Clock
    started_s: float
    sent: int = 0
    kills: int = 0
    freezes: int = 0
    broker_restarts: int = 0
    unexpected_exits: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)

    def elapsed_s(self) -> float:
        return self.clock.monotonic_s() - self.started_s

    def note(self, event: str, **details: Any) -> None:
        self.events.append({"at_s": round(self.elapsed_s(), 2), "event": event, **details})


@dataclass(frozen=True)
class ChaosSummary:
    options: ChaosOptions
    agreement: Agreement
    timeline: Timeline
    sandbox_stats: dict[str, Any]
    complete: bool  # every command answered within --max-wait-s
    workdir: Path
    evidence_path: Path | None = None
    worker_settings: dict[str, Any] = field(default_factory=dict)
    injected: dict[str, int] = field(default_factory=dict)  # kind -> messages (chaos_plan.PlannedMessage)

    @property
    def ok(self) -> bool:
        return self.agreement.ok

    def to_json(self) -> dict[str, Any]:
        opts = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.options.__dict__.items()}
        return {
            "ok": self.ok,
            "options": opts,
            "check": self.agreement.to_json(),
            "faults_injected": self.sandbox_stats.get("faults", {}),
            "api_calls": self.sandbox_stats.get("calls", {}),
            "sandbox_stats": {k: self.sandbox_stats.get(k) for k in ("calls", "codes", "faults", "logins")},
            "kills": self.timeline.kills,
            "freezes": self.timeline.freezes,
            "unexpected_worker_exits": self.timeline.unexpected_exits,
            "broker_restarts": self.timeline.broker_restarts,
            "elapsed_s": round(self.timeline.elapsed_s(), 1),
            "complete": self.complete,
            "timeline": self.timeline.events,
            "workdir": str(self.workdir),
            "evidence": str(self.evidence_path) if self.evidence_path else None,
            "worker_settings": {k: str(v) for k, v in self.worker_settings.items()},
            "injected": dict(sorted(self.injected.items())),
        }


class SerialBroker:
    """The run's broker: a restart and a stop never overlap (Ctrl-C during the restart stops it after)."""

    def __init__(self, broker: LocalKafka) -> None:
        self.broker = broker
        self._lock = threading.Lock()

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def restart(self) -> None:
        with self._lock:
            self.broker.restart(hard=True, down_s=BROKER_DOWN_S)

    def stop(self) -> None:
        with self._lock:
            self.broker.stop()


class Chaos:
    """Kills and restarts workers, restarts the broker, restarts a worker that died on its own."""

    def __init__(
        self,
        options: ChaosOptions,
        workers: list[WorkerProcess],
        broker: SerialBroker | None,
        timeline: Timeline,
        say: Say,
    ) -> None:
        self._options = options
        self._workers = workers
        self._broker = broker
        self._timeline = timeline
        self._say = say
        self._rng = random.Random(options.seed)
        self.producing = True
        production_s = options.commands / options.rate_per_s
        self._broker_restart_at_s = production_s / 2
        self._next_kill_s = self._interval_s()
        self._thaws: list[asyncio.Task[None]] = []
        self._frozen: set[str] = set()

    def _interval_s(self) -> float:
        return self._options.seconds_between_kills * self._rng.uniform(0.75, 1.25)

    def _done(self) -> bool:
        kills_done = self._options.max_kills is None or self._timeline.kills >= self._options.max_kills
        restarts_done = (
            self._broker is None or self._timeline.broker_restarts >= self._options.broker_restarts
        )
        freezes_done = self._timeline.freezes >= self._options.freezes and all(t.done() for t in self._thaws)
        return not self.producing and kills_done and restarts_done and freezes_done

    async def run(self) -> None:
        clock = self._timeline.clock
        while not self._done():
            await clock.sleep_s(0.25)
            await self._restart_the_dead()
            now_s = self._timeline.elapsed_s()
            if self._broker_restart_due(now_s):
                await self._restart_broker()
            elif now_s >= self._next_kill_s and self._freeze_wanted():
                self._freeze_one()
                self._next_kill_s = self._timeline.elapsed_s() + self._interval_s()
            elif now_s >= self._next_kill_s and self._kill_wanted():
                await self._kill_one()
                self._next_kill_s = self._timeline.elapsed_s() + self._interval_s()

    def _broker_restart_due(self, now_s: float) -> bool:
        if self._broker is None or self._timeline.broker_restarts >= self._options.broker_restarts:
            return False
        return now_s >= self._broker_restart_at_s or not self.producing

    def _kill_wanted(self) -> bool:
        return self._options.max_kills is None or self._timeline.kills < self._options.max_kills

    def _freeze_wanted(self) -> bool:
        if self._timeline.freezes >= self._options.freezes or not self._thawed():
            return False
        kills_left = self._options.max_kills is None or self._timeline.kills < self._options.max_kills
        return not kills_left or self._rng.random() < 0.5

    def _thawed(self) -> list[WorkerProcess]:
        return [w for w in self._workers if w.running and w.name not in self._frozen]

    def _freeze_one(self) -> None:
        """SIGSTOP one worker for ``freeze_s`` (past its session timeout), then SIGCONT it."""
        victim = self._rng.choice(self._thawed())
        self._frozen.add(victim.name)
        victim.freeze()
        self._timeline.freezes += 1
        self._timeline.note("SIGSTOP", worker=victim.name, pid=victim.pid, for_s=self._options.freeze_s)

        async def thaw() -> None:
            await self._timeline.clock.sleep_s(self._options.freeze_s)
            victim.thaw()
            self._frozen.discard(victim.name)
            self._timeline.note("SIGCONT", worker=victim.name, pid=victim.pid)

        self._thaws.append(asyncio.create_task(thaw(), name=f"thaw-{victim.name}"))

    async def _kill_one(self) -> None:
        candidates = [w for w in self._workers if w.name not in self._frozen]
        victim = self._rng.choice(candidates or self._workers)
        pid = victim.pid
        await victim.kill()
        self._timeline.kills += 1
        self._timeline.note("kill -9", worker=victim.name, pid=pid)
        await self._timeline.clock.sleep_s(RESTART_DELAY_S)
        await victim.start()
        self._timeline.note("worker started", worker=victim.name, pid=victim.pid)

    async def _restart_broker(self) -> None:
        assert self._broker is not None
        self._timeline.note("broker crash (kill -9)")
        self._say(f"chaos: crashing the broker, down {BROKER_DOWN_S:g} s")
        await asyncio.to_thread(self._broker.restart)
        self._timeline.broker_restarts += 1
        self._timeline.note("broker answering again")

    async def _restart_the_dead(self) -> None:
        for worker in self._workers:
            if worker.running:
                continue
            self._timeline.unexpected_exits += 1
            self._timeline.note("worker exited on its own", worker=worker.name, code=worker.returncode)
            self._say(f"chaos: {worker.name} exited on its own ({worker.returncode}); see {worker.log_path}")
            await worker.start()


class PartitionedSender:
    """Sends a command to a partition named explicitly (a cross-partition duplicate), keyed by its MSISDN.

    Configured like ``CommandProducer`` (idempotent, ``acks=all``, rides out a broker restart); a producer
    of its own because ``CommandProducer.send`` always lets the key choose the partition.
    """

    def __init__(self, bootstrap: str, topic: str, *, delivery_timeout_s: float = 120.0) -> None:
        self.topic = topic
        self._pending: list[asyncio.Future[Any]] = []
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=int(delivery_timeout_s * 1000),
            client_id="ecash-chaos-partitioned",
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, command: Mapping[str, Any], partition: int) -> None:
        value, key = command_bytes(command)
        self._pending.append(await self._producer.send(self.topic, value=value, key=key, partition=partition))

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)


async def produce_paced(
    producer: CommandProducer,
    messages: list[PlannedMessage],
    rate_per_s: float,
    timeline: Timeline,
    elsewhere: PartitionedSender | None = None,
) -> None:
    """Send ``messages`` at ``rate_per_s`` (in small bursts); a broker outage delays, then catches up.

    A message with an explicit partition goes through ``elsewhere``; the others are keyed by MSISDN.
    """
    clock = timeline.clock
    start_s = clock.monotonic_s()
    burst = max(1, int(rate_per_s / 10))

    async def flush() -> None:
        await producer.flush()
        if elsewhere is not None:
            await elsewhere.flush()

    for index, message in enumerate(messages, start=1):
        if message.partition is None:
            await producer.send(message.command)
        elif elsewhere is None:
            raise ValueError("a message for an explicit partition needs a PartitionedSender")
        else:
            await elsewhere.send(message.command, message.partition)
        timeline.sent = index
        if index % burst == 0:
            if index % (burst * 20) == 0:
                await flush()
            await clock.sleep_s(start_s + index / rate_per_s - clock.monotonic_s())
    await flush()


async def wait_for_every_message(
    tail: ResultTail, expected: Mapping[str, int], timeout_s: float, clock: Clock
) -> bool:
    """True once every command message has a result of its own; False when ``timeout_s`` passes first.

    ``expected``: trace number -> command messages carrying it. Every result of one command message has its
    ``event_id``, an operator's decision aside (``ecash_dev.chaos.agreement``), so a trace number is
    answered when it has as many distinct non-manual event ids as messages.
    """
    deadline_s = clock.monotonic_s() + timeout_s
    while not all(_answered(tail, trace) >= count for trace, count in expected.items()):
        if clock.monotonic_s() >= deadline_s:
            return False
        await clock.sleep_s(0.1)
    return True


def _answered(tail: ResultTail, trace: str) -> int:
    return sum(1 for r in tail.results.get(trace, {}).values() if r.get("resolved_by") != "manual")


async def progress(tail: ResultTail, total: int, timeline: Timeline, say: Say) -> None:
    every_s = 1.0 if sys.stderr.isatty() else 10.0
    end = "\r" if sys.stderr.isatty() else "\n"
    while True:
        await timeline.clock.sleep_s(every_s)
        line = (
            f"chaos {timeline.elapsed_s():6.0f} s: sent {timeline.sent}/{total}, "
            f"answered {len(tail.results)}, kills {timeline.kills}, "
            f"broker restarts {timeline.broker_restarts}"
        )
        print(line, end=end, file=sys.stderr, flush=True)


async def start_broker(
    options: ChaosOptions, workdir: Path, stack: AsyncExitStack, say: Say
) -> SerialBroker | None:
    if options.bootstrap:
        return None
    broker = SerialBroker(scratch_broker(workdir / "kafka", report=say))
    stack.push_async_callback(asyncio.to_thread, broker.stop)
    await asyncio.to_thread(broker.broker.start)
    return broker


@dataclass(frozen=True)
class Stack:
    """What ``start_stack`` started (everything is stopped by the exit stack it was given)."""

    bootstrap: str
    broker: SerialBroker | None
    sandbox: SandboxProcess
    settings: Settings
    worker_settings: dict[str, Any]
    workers: list[WorkerProcess]


async def start_stack(options: ChaosOptions, workdir: Path, stack: AsyncExitStack, say: Say) -> Stack:
    """The broker (unless ``--bootstrap``), the sandbox with its faults, the topics, the workers."""
    broker = await start_broker(options, workdir, stack, say)
    bootstrap = broker.bootstrap if broker else str(options.bootstrap)
    sandbox = SandboxProcess(
        options=["--seed-wallets", str(options.msisdns), "--random-seed", str(options.seed)],
        log_path=workdir / "sandbox.log",
    )
    stack.push_async_callback(sandbox.stop)
    await sandbox.start()
    await sandbox.admin.set_faults(fault_rules(options.status_lag_s))
    prefix = f"chaos{uuid.uuid4().hex[:8]}"
    base = worker_settings(bootstrap, sandbox.base_url, prefix, options.partitions, options.worker_overrides)
    settings = load_settings(**base)
    await ensure_topics(bootstrap, worker_topic_specs(settings), client_kwargs={})
    if options.journal_preload:
        await preload_journal(bootstrap, settings, options.journal_preload, say)
    workers = []
    for i in range(options.workers):
        values = {**base, "state_dir": workdir / f"state-{i}"}
        if options.static_membership:
            values["kafka_group_instance_id"] = f"worker-{i}"
        worker = WorkerProcess(values, workdir / f"worker-{i}.log", name=f"worker-{i}")
        stack.callback(worker.kill_now)
        await worker.start()
        workers.append(worker)
    say(f"chaos: broker {bootstrap}, sandbox {sandbox.url}, {len(workers)} workers, logs in {workdir}")
    return Stack(bootstrap, broker, sandbox, settings, base, workers)


async def preload_journal(bootstrap: str, settings: Settings, count: int, say: Say) -> None:
    """``count`` finished journal records (trace numbers nobody sends) over the journal's partitions."""
    say(f"chaos: preloading the journal with {count:,} finished records")
    template = (
        b'{"trace_number":"PRE%010d","fingerprint":"-","state":"done","command":{"type":"charge",'
        b'"trace_number":"PRE%010d","msisdn":"08130000000","amount":"1"},"partition":%d,"offset":0,'
        b'"updated_at":"2026-01-01T00:00:00Z"}'
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        pending = []
        partitions = settings.topic_partitions
        for i in range(count):
            partition = i % partitions
            value = template % (i, i, partition)
            key = b"PRE%010d" % i
            pending.append(await producer.send(settings.journal_topic, value, key=key, partition=partition))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def run_chaos(options: ChaosOptions, *, say: Say = say, clock: Clock | None = None) -> ChaosSummary:
    """The whole run: start, send under chaos, wait, check, stop. Writes ``summary.json`` in the workdir."""
    options.validate()
    warning = options.lag_warning()
    if warning:
        say(f"chaos: WARNING {warning}")
    clock = clock or SystemClock()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="ecash-chaos-"))
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    timeline = Timeline(clock, clock.monotonic_s())
    async with AsyncExitStack() as exits:
        stack = await start_stack(options, workdir, exits, say)
        bootstrap, settings = stack.bootstrap, stack.settings
        messages = plan_messages(
            options.commands,
            options.msisdns,
            options.seed,
            partitions=options.partitions,
            cross_partition_duplicates=options.cross_partition_duplicates,
            trace_reuses=options.trace_reuses,
        )
        tail = await exits.enter_async_context(ResultTail(bootstrap, settings.results_topic))
        producer = CommandProducer(bootstrap, settings.commands_topic)
        elsewhere = PartitionedSender(bootstrap, settings.commands_topic)
        await elsewhere.start()
        exits.push_async_callback(elsewhere.stop)
        complete = await _drive(options, stack, messages, tail, (producer, elsewhere), timeline, say)
        for worker in stack.workers:
            code = await worker.terminate(30.0)
            timeline.note("worker stopped", worker=worker.name, code=code)
        agreement, stats = await ledger_check(bootstrap, settings, stack.sandbox.admin)
        evidence = None
        if not agreement.ok or agreement.result_count_mismatch:
            evidence = await collect_evidence(bootstrap, settings, stack.sandbox.admin, agreement, workdir)
    injected = dict(Counter(m.injected for m in messages if m.injected is not None))
    summary = ChaosSummary(
        options, agreement, timeline, stats, complete, workdir, evidence, stack.worker_settings, injected
    )
    (workdir / "summary.json").write_bytes(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2))
    if summary.ok and stack.broker is not None:
        shutil.rmtree(workdir / "kafka", ignore_errors=True)
    return summary


async def _drive(
    options: ChaosOptions,
    stack: Stack,
    messages: list[PlannedMessage],
    tail: ResultTail,
    producers: tuple[CommandProducer, PartitionedSender],
    timeline: Timeline,
    say: Say,
) -> bool:
    """Send under chaos, then wait for every result. True if every command message was answered in time."""
    chaos = Chaos(options, stack.workers, stack.broker, timeline, say)
    chaos_task = asyncio.create_task(chaos.run(), name="chaos")
    progress_task = asyncio.create_task(progress(tail, len(messages), timeline, say), name="progress")
    producer, elsewhere = producers
    try:
        async with producer:
            await produce_paced(producer, messages, options.rate_per_s, timeline, elsewhere)
        timeline.note("all commands sent", count=len(messages))
        chaos.producing = False
        await chaos_task
        timeline.note("chaos over")
        expected = Counter(m.command["trace_number"] for m in messages)
        complete = await wait_for_every_message(tail, expected, options.max_wait_s, timeline.clock)
        timeline.note("all answered" if complete else "gave up waiting", answered=len(tail.results))
        await timeline.clock.sleep_s(SETTLE_S)
        return complete
    finally:
        for task in (chaos_task, progress_task):
            task.cancel()
        await asyncio.gather(chaos_task, progress_task, return_exceptions=True)
        if sys.stderr.isatty():
            print(file=sys.stderr)


# --- the command line -----------------------------------------------------------------------------


_DEFAULTS = ChaosOptions()
_DIR = click.Path(file_okay=False, path_type=Path)


@click.command(
    "chaos",
    cls=Command,
    short_help="a repeatable chaos run: kill -9, broker crash, API faults; checks results against the ledger",
    help=help_text(__doc__),
)
@click.option("--commands", type=int, default=_DEFAULTS.commands, help="commands to send")
@click.option("--msisdns", type=int, default=_DEFAULTS.msisdns, help="wallets they are spread over")
@click.option("--workers", type=int, default=_DEFAULTS.workers, help="worker processes in the group")
@click.option(
    "--seconds-between-kills",
    type=float,
    default=_DEFAULTS.seconds_between_kills,
    help="a worker is killed (SIGKILL) and restarted this often",
)
@click.option("--kills", type=int, default=None, help="at most this many kills (default: no limit)")
@click.option("--freezes", type=int, default=_DEFAULTS.freezes, help="SIGSTOP/SIGCONT this many times")
@click.option("--freeze-s", type=float, default=_DEFAULTS.freeze_s, help="how long a worker stays frozen")
@click.option(
    "--journal-preload", type=int, default=_DEFAULTS.journal_preload, help="finished records preloaded"
)
@click.option(
    "--broker-restarts",
    type=click.Choice((0, 1)),
    default=_DEFAULTS.broker_restarts,
    help="crash and restart the broker this many times",
)
@click.option("--seed", type=int, default=_DEFAULTS.seed, help="the same seed, the same run")
@click.option("--rate", type=float, default=_DEFAULTS.rate_per_s, help="commands sent per second")
@click.option("--partitions", type=int, default=_DEFAULTS.partitions, help="partitions of the commands topic")
@click.option(
    "--cross-partition-duplicates",
    type=float,
    default=_DEFAULTS.cross_partition_duplicates,
    help="share of commands sent again, same value and key, to the next partition",
)
@click.option(
    "--trace-reuses",
    type=float,
    default=_DEFAULTS.trace_reuses,
    help="share of commands whose trace number is reused by a command on another wallet",
)
@click.option(
    "--max-wait-s", type=float, default=_DEFAULTS.max_wait_s, help="how long to wait for every result"
)
@click.option("--bootstrap", default=None, help="an existing cluster (no local broker, no restart)")
@click.option("--workdir", type=_DIR, default=None, help="default: a new temporary directory")
@click.option(
    "--json-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="also write the summary here",
)
@click.option(
    "--status-lag-s", type=float, default=_DEFAULTS.status_lag_s, help="the sandbox's status lag (s)"
)
@click.option(
    "--setting",
    multiple=True,
    metavar="NAME=VALUE",
    help="a worker setting for an experiment, e.g. resolution_grace_s=3 (repeatable)",
)
@click.pass_context
def command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


def options_from_args(args: SimpleNamespace) -> ChaosOptions:
    return ChaosOptions(
        commands=args.commands,
        msisdns=args.msisdns,
        workers=args.workers,
        seconds_between_kills=args.seconds_between_kills,
        max_kills=args.kills,
        freezes=args.freezes,
        freeze_s=args.freeze_s,
        journal_preload=args.journal_preload,
        broker_restarts=0 if args.bootstrap else args.broker_restarts,
        seed=args.seed,
        rate_per_s=args.rate,
        partitions=args.partitions,
        cross_partition_duplicates=args.cross_partition_duplicates,
        trace_reuses=args.trace_reuses,
        max_wait_s=args.max_wait_s,
        bootstrap=args.bootstrap,
        workdir=args.workdir,
        status_lag_s=args.status_lag_s,
        worker_overrides=dict(_setting(text) for text in args.setting),
    )


def _setting(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--setting {text!r}: expected NAME=VALUE")
    if name.strip() == "resolution_schedule_s":
        return name.strip(), [float(step) for step in value.split(",")]
    return name.strip(), value.strip()


def run(args: SimpleNamespace) -> int:
    quiet_kafka_logs()  # a broker restart makes aiokafka log every reconnect; the workers' logs keep them
    try:
        options = options_from_args(args)
        options.validate()
    except ValueError as exc:
        say(f"chaos: {exc}")
        return 2
    try:
        summary = asyncio.run(cancelled_by_sigterm(run_chaos(options)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("chaos: interrupted; everything it started has been stopped")
        return 130
    except (StackError, BrokerError, KafkaError, OSError) as exc:
        say(f"chaos: could not run: {exc}")
        return 1
    print(summary_table(summary.to_json()))
    if args.json_out is not None:
        args.json_out.write_bytes(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2))
    return 0 if summary.ok else 1


def main(argv: list[str] | None = None) -> int:
    return commandline.main(command, argv, "python -m ecash_dev.chaos")


if __name__ == "__main__":
    sys.exit(main())
