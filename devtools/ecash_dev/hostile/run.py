"""``python -m ecash_dev.hostile``: hostile input against the real broker, the sandbox and one worker process.

A seeded mix (``ecash_dev.hostile.plan``): half hostile messages (absurd amounts, exponents, NaN, wrong types,
odd unicode, duplicate keys, deep nesting, huge numbers, invalid UTF-8, tombstones, odd keys and headers,
oversized messages, review-decision-shaped junk...), half valid charges and credits with unique trace
numbers, all produced to the commands topic as fast as the broker takes them. One ``ecash-worker run``
consumes them. Then the verdict, from the topics and the sandbox's ledger:

- the worker never exited (an exit is counted, logged and the worker started again, to see the rest);
- every message is answered: a result whose ``event_id`` is the one of its (trace number, partition,
  offset), or a dead letter naming its partition and offset; exactly one answer each;
- every hostile message got the answer it must (``rejected`` naming the rule, or a dead letter with the
  reason); every valid command ``succeeded``;
- the ledger executed every valid trace number exactly once and no hostile one.

    python -m ecash_dev.hostile --messages 10000 --seed 1 --json-out hostile.json

Exit 0 only if all of that holds. Its own broker unless ``--bootstrap``; logs and ``summary.json`` in the
work directory. Everything it starts is stopped on exit, on failure and on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from ecash_dev.chaos.plan import worker_settings
from ecash_dev.hostile.plan import Message, plan_messages
from ecash_dev.kafka import (
    BrokerError,
    scratch_broker,
)
from ecash_dev.stack import SandboxProcess, StackError, WorkerProcess, cancelled_by_sigterm
from worker import commandline
from worker.clock import Clock, SystemClock
from worker.commandline import Command, arguments, help_text
from worker.contracts import event_id_for
from worker.kafka.admin import ensure_topics, worker_topic_specs
from worker.ops.command import quiet_kafka_logs
from worker.settings import Settings, load_settings

Say = Callable[[str], None]
SETTLE_S = 2.0  # after the last answer: time for a second answer that should not exist to show up
PROCESSOR_FAILURE = "it will be retried from the journal"  # the runner's log line for a failed job
EXAMPLES = 10


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class HostileOptions:
    messages: int = 10_000
    msisdns: int = 500
    seed: int = 1
    hostile_share: float = 0.5
    partitions: int = 12
    max_wait_s: float = 300.0
    bootstrap: str | None = None
    workdir: Path | None = None

    def validate(self) -> None:
        if self.messages < 1 or self.msisdns < 1:
            raise ValueError("--messages and --msisdns must be at least 1")
        if not 0 <= self.hostile_share <= 1:
            raise ValueError("--hostile-share is a fraction between 0 and 1")


@dataclass
class Answers:
    """What the worker published: results by event id, dead letters by source (partition, offset)."""

    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    dead_letters: dict[tuple[int, int], list[dict[str, Any]]] = field(default_factory=dict)

    def add_result(self, value: bytes | None) -> None:
        result = orjson.loads(value or b"{}")
        self.results.setdefault(str(result.get("event_id")), []).append(result)

    def add_dead_letter(self, value: bytes | None) -> None:
        letter = orjson.loads(value or b"{}")
        self.dead_letters.setdefault((int(letter["partition"]), int(letter["offset"])), []).append(letter)

    def of(self, sent: Sent) -> list[dict[str, Any]]:
        found = list(self.dead_letters.get((sent.partition, sent.offset), []))
        if sent.message.addressed_as is not None:
            event_id = event_id_for(sent.message.addressed_as, sent.partition, sent.offset)
            found += self.results.get(event_id, [])
        return found


@dataclass(frozen=True)
class Sent:
    message: Message
    partition: int
    offset: int


@dataclass
class Verdict:
    messages: int = 0
    hostile: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    answered: int = 0
    answered_as_expected: int = 0
    answered_twice: int = 0
    results: int = 0
    dead_letters: int = 0
    valid_succeeded: int = 0
    executions: int = 0
    expected_executions: int = 0  # valid commands and the odd-but-legal hostile ones
    executed_twice: int = 0
    unexpected_executions: int = 0  # executions of a trace number that must not move money
    not_executed_once: int = 0  # trace numbers that must execute once and did not
    worker_exits: int = 0
    processor_failures: int = 0
    wall_s: float = 0.0
    unexpected: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.answered == self.answered_as_expected == self.messages
            and self.answered_twice == 0
            and self.valid_succeeded == self.messages - self.hostile
            and self.executions == self.expected_executions
            and self.executed_twice == self.unexpected_executions == self.not_executed_once == 0
            and self.worker_exits == 0
            and self.processor_failures == 0
        )

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, **{k: v for k, v in self.__dict__.items()}}


def judge(sent: list[Sent], answers: Answers, ledger: list[dict[str, Any]], verdict: Verdict) -> None:
    """Fill ``verdict`` from what was sent, what was answered, and what the ledger executed."""
    verdict.messages = len(sent)
    verdict.hostile = sum(s.message.hostile for s in sent)
    verdict.kinds = dict(sorted(Counter(s.message.kind for s in sent).items()))
    verdict.results = sum(len(r) for r in answers.results.values())
    verdict.dead_letters = sum(len(d) for d in answers.dead_letters.values())
    for item in sent:
        found = answers.of(item)
        distinct = {orjson.dumps(a, option=orjson.OPT_SORT_KEYS) for a in found}
        verdict.answered += bool(found)
        verdict.answered_twice += len(distinct) > 1
        if found and as_expected(item.message, found[0]):
            verdict.answered_as_expected += 1
            verdict.valid_succeeded += not item.message.hostile
        elif len(verdict.unexpected) < EXAMPLES:
            verdict.unexpected.append(
                {
                    "kind": item.message.kind,
                    "trace_number": item.message.trace_number,
                    "partition": item.partition,
                    "offset": item.offset,
                    "expected": item.message.expect.describe(),
                    "got": found[0] if found else None,
                }
            )
    executed = Counter(str(e["trace_number"]) for e in ledger)
    verdict.executions = sum(executed.values())
    verdict.executed_twice = sum(1 for count in executed.values() if count > 1)
    must = {str(s.message.addressed_as) for s in sent if s.message.must_execute}
    verdict.expected_executions = len(must)
    verdict.unexpected_executions = sum(count for trace, count in executed.items() if trace not in must)
    verdict.not_executed_once = sum(1 for trace in must if executed[trace] != 1)


def as_expected(message: Message, answer: dict[str, Any]) -> bool:
    expect = message.expect
    if expect.answer == "dead_letter":
        return str(answer.get("reason", "")).startswith(f"{expect.label}:")
    if answer.get("outcome") != expect.outcome:
        return False
    if expect.resolved_by is not None and answer.get("resolved_by") != expect.resolved_by:
        return False
    return expect.label is None or f"[{expect.label}]" in str(answer.get("detail", ""))


# --- the run ---------------------------------------------------------------------------------------------


async def produce_all(bootstrap: str, topic: str, messages: list[Message]) -> list[Sent]:
    """Every message, as fast as the broker takes them; where each one landed."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, client_id="hostile"
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=m.value, key=m.key, headers=list(m.headers)) for m in messages
        ]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [Sent(m, int(md.partition), int(md.offset)) for m, md in zip(messages, metadata, strict=True)]


async def collect(settings: Settings, answers: Answers, stop: asyncio.Event) -> None:
    """Follow the results and dead-letter topics from their beginning until ``stop``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="hostile-collect",
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in (settings.results_topic, settings.dlq_topic)
            for p in range(settings.topic_partitions)
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not stop.is_set():
            try:
                batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            except KafkaError:
                await asyncio.sleep(0.5)
                continue
            for tp, records in batch.items():
                add = answers.add_result if tp.topic == settings.results_topic else answers.add_dead_letter
                for record in records:
                    add(record.value)
    finally:
        await consumer.stop()


async def start_broker(workdir: Path, exits: AsyncExitStack, say: Say) -> str:
    broker = scratch_broker(workdir / "kafka", report=say)
    exits.push_async_callback(asyncio.to_thread, broker.stop)
    await asyncio.to_thread(broker.start)
    return broker.bootstrap


async def run_hostile(options: HostileOptions, *, say: Say = say, clock: Clock | None = None) -> Verdict:
    """Start what is needed, send the mix, wait for every answer, judge, stop everything."""
    options.validate()
    clock = clock or SystemClock()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="ecash-hostile-"))
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    verdict = Verdict()
    messages = plan_messages(options.messages, options.msisdns, options.seed, options.hostile_share)
    async with AsyncExitStack() as exits:
        bootstrap = options.bootstrap or await start_broker(workdir, exits, say)
        sandbox = SandboxProcess(
            options=["--seed-wallets", str(options.msisdns), "--random-seed", str(options.seed)],
            log_path=workdir / "sandbox.log",
        )
        exits.push_async_callback(sandbox.stop)
        await sandbox.start()
        prefix = f"hostile{uuid.uuid4().hex[:8]}"
        base = worker_settings(bootstrap, sandbox.base_url, prefix, options.partitions)
        settings = load_settings(**base)
        await ensure_topics(bootstrap, worker_topic_specs(settings), client_kwargs={})
        worker = WorkerProcess({**base, "state_dir": workdir / "state"}, workdir / "worker.log")
        exits.callback(worker.kill_now)
        answers, stop = Answers(), asyncio.Event()
        collector = asyncio.create_task(collect(settings, answers, stop), name="collect")
        started_s = clock.monotonic_s()
        await worker.start()
        say(f"hostile: broker {bootstrap}, sandbox {sandbox.url}, logs in {workdir}")
        sent = await produce_all(bootstrap, settings.commands_topic, messages)
        say(f"hostile: {len(sent)} messages sent ({sum(m.hostile for m in messages)} hostile)")
        await wait_answered(sent, answers, worker, verdict, options.max_wait_s, clock, say)
        verdict.wall_s = round(clock.monotonic_s() - started_s, 1)
        await clock.sleep_s(SETTLE_S)
        stop.set()
        await collector
        if not worker.running:
            verdict.worker_exits += 1
        await worker.terminate(30.0)
        ledger = await sandbox.admin.ledger()
    judge(sent, answers, ledger, verdict)
    verdict.processor_failures = count_lines(workdir / "worker.log", PROCESSOR_FAILURE)
    (workdir / "summary.json").write_bytes(orjson.dumps(verdict.to_json(), option=orjson.OPT_INDENT_2))
    return verdict


async def wait_answered(
    sent: list[Sent],
    answers: Answers,
    worker: WorkerProcess,
    verdict: Verdict,
    max_wait_s: float,
    clock: Clock,
    say: Say,
) -> None:
    """Until every message has an answer (or ``max_wait_s``); a worker that exits is counted and restarted."""
    deadline_s = clock.monotonic_s() + max_wait_s
    pending = list(sent)
    last_report_s = clock.monotonic_s()
    while pending and clock.monotonic_s() < deadline_s:
        await clock.sleep_s(0.2)
        if not worker.running:
            verdict.worker_exits += 1
            say(f"hostile: the worker exited ({worker.returncode}); see {worker.log_path}; starting it again")
            await worker.start()
        pending = [s for s in pending if not answers.of(s)]
        if clock.monotonic_s() - last_report_s >= 10.0:
            last_report_s = clock.monotonic_s()
            say(f"hostile: {len(sent) - len(pending)}/{len(sent)} answered")


def count_lines(path: Path, needle: str) -> int:
    try:
        with path.open("rb") as log:
            return sum(1 for line in log if needle.encode() in line)
    except OSError:
        return 0


def summary_table(verdict: Verdict) -> str:
    valid = verdict.messages - verdict.hostile
    rows = [
        ("messages", f"{verdict.messages} ({verdict.hostile} hostile, of {len(verdict.kinds) - 1} kinds)"),
        ("answered", f"{verdict.answered} ({verdict.answered_as_expected} as expected)"),
        ("answered twice", str(verdict.answered_twice)),
        ("results / dead letters", f"{verdict.results} / {verdict.dead_letters}"),
        ("valid commands succeeded", f"{verdict.valid_succeeded} of {valid}"),
        (
            "executions (ledger)",
            f"{verdict.executions} of {verdict.expected_executions} due, twice: {verdict.executed_twice}",
        ),
        ("executions not due", str(verdict.unexpected_executions)),
        ("worker exits", str(verdict.worker_exits)),
        ("processor failures (log)", str(verdict.processor_failures)),
        ("wall time", f"{verdict.wall_s} s"),
        ("verdict", "OK" if verdict.ok else "FAILED"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


# --- the command line -----------------------------------------------------------------------------


_DEFAULTS = HostileOptions()


@click.command("hostile", cls=Command, help=help_text(__doc__))
@click.option("--messages", type=int, default=_DEFAULTS.messages, help="messages to produce")
@click.option("--msisdns", type=int, default=_DEFAULTS.msisdns, help="wallets the valid commands use")
@click.option("--seed", type=int, default=_DEFAULTS.seed, help="the same seed, the same mix")
@click.option(
    "--hostile-share", type=float, default=_DEFAULTS.hostile_share, help="share of hostile messages (0-1)"
)
@click.option("--partitions", type=int, default=_DEFAULTS.partitions, help="partitions of the commands topic")
@click.option(
    "--max-wait-s", type=float, default=_DEFAULTS.max_wait_s, help="how long to wait for every answer"
)
@click.option("--bootstrap", default=None, help="an existing cluster (default: a broker of its own)")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="default: a new temporary directory",
)
@click.option(
    "--json-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="also write the summary here",
)
@click.pass_context
def command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


def run(args: SimpleNamespace) -> int:
    options = HostileOptions(
        messages=args.messages,
        msisdns=args.msisdns,
        seed=args.seed,
        hostile_share=args.hostile_share,
        partitions=args.partitions,
        max_wait_s=args.max_wait_s,
        bootstrap=args.bootstrap,
        workdir=args.workdir,
    )
    try:
        options.validate()
    except ValueError as exc:
        say(f"hostile: {exc}")
        return 2
    quiet_kafka_logs()
    try:
        verdict = asyncio.run(cancelled_by_sigterm(run_hostile(options)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("hostile: interrupted; everything it started has been stopped")
        return 130
    except (StackError, BrokerError, KafkaError, OSError) as exc:
        say(f"hostile: could not run: {exc}")
        return 1
    print(summary_table(verdict))
    if args.json_out is not None:
        args.json_out.write_bytes(orjson.dumps(verdict.to_json(), option=orjson.OPT_INDENT_2))
    return 0 if verdict.ok else 1


def main(argv: list[str] | None = None) -> int:
    return commandline.main(command, argv, "python -m ecash_dev.hostile")


if __name__ == "__main__":
    sys.exit(main())
