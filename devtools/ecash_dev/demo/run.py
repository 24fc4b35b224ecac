"""``ecash-worker demo`` (``make demo``): the whole job on this machine, in about a minute.

It starts the local Kafka broker (``ecash_dev.kafka``; an existing ``ECASH_KAFKA_BOOTSTRAP_SERVERS``
cluster is used as it is), the sandbox host seeded with wallets, and one worker, all as processes. It
sends about 200 commands: ordinary charges and credits, declines (not enough credits, unknown member,
credit limit), ambiguous answers scripted by trace number that Status Inquiry resolves, one charge that
ends in manual review, a token expiry, a duplicate, a trace number reused with other parameters and
messages for the dead-letter topic. Then it prints what became of them, checks the results against
the sandbox's ledger, and says where the worker's metrics are. Exit 0 when everything agrees.

Everything it started is stopped at the end (the broker only if the demo started it), unless
``--keep-running``: then it prints how to look around and how to stop.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import httpx

from ecash_dev.chaos.agreement import Agreement
from ecash_dev.chaos.report import ledger_check, read_json
from ecash_dev.demo.plan import CASES, DEAD_LETTERS, all_commands, fault_rules, wallets, worker_settings
from ecash_dev.kafka import DEFAULT_PORT, BrokerError, ExternalKafka, ensure_broker, local_broker
from ecash_dev.stack import (
    ResultTail,
    SandboxProcess,
    StackError,
    WorkerProcess,
    cancelled_by_sigterm,
    free_port,
    produce,
)
from worker import commandline
from worker.clock import Clock, SystemClock
from worker.commandline import Command, arguments, help_text
from worker.kafka.admin import ensure_topics, worker_topic_specs
from worker.ops.command import quiet_kafka_logs
from worker.settings import Settings, load_settings

Say = Callable[[str], None]
DEFAULT_METRICS_PORT = 9464
REVIEW_TRACE = "REVIEW1"
WAIT_S = 120.0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class CaseReport:
    trace_number: str
    story: str
    expected: tuple[str, ...]  # its results in order: "outcome (resolved_by)"
    actual: tuple[str, ...]
    calls: tuple[str, ...]  # the API calls made for it and what each answered (from the journal)
    executions: int  # in the sandbox's ledger

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


@dataclass
class DemoSummary:
    agreement: Agreement
    cases: list[CaseReport]
    review: dict[str, Any] | None
    review_ledger: list[dict[str, Any]]
    dead_letters: list[str]
    decline_codes: Counter[str]
    metrics_url: str
    metrics_excerpt: list[str]
    faults_injected: Counter[str]
    workdir: Path
    complete: bool
    elapsed_s: float
    stack: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.agreement.ok
            and self.complete
            and all(case.ok for case in self.cases)
            and len(self.dead_letters) == len(DEAD_LETTERS)
            and self.review is not None
        )


async def run_demo(
    bootstrap: str,
    workdir: Path,
    *,
    metrics_port: int | None = None,
    keep_running: bool = False,
    say: Say = say,
    clock: Clock | None = None,
) -> DemoSummary:
    """Sandbox and worker as processes against ``bootstrap``; the commands; the summary.

    The processes are stopped before returning, unless ``keep_running`` (then they are left running,
    and ``summary.stack`` says how to reach and stop them).
    """
    clock = clock or SystemClock()
    started_s = clock.monotonic_s()
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    sandbox = SandboxProcess(options=["--random-seed", "7"], log_path=workdir / "sandbox.log")
    port = metrics_port if metrics_port is not None else free_port()
    prefix = f"demo{uuid.uuid4().hex[:8]}"
    values = worker_settings(bootstrap, sandbox.base_url, prefix, port)
    values["state_dir"] = workdir / "state"
    settings = load_settings(**values)
    worker = WorkerProcess(values, workdir / "worker.log")
    try:
        await sandbox.start()
        await sandbox.admin.seed_wallets(wallets())
        await sandbox.admin.set_faults(fault_rules())
        await ensure_topics(bootstrap, worker_topic_specs(settings), client_kwargs={})
        await worker.start()
        metrics_url = f"http://127.0.0.1:{port}"
        await wait_ready(worker, metrics_url, clock)
        say(f"demo: worker ready (metrics {metrics_url}/metrics); sending {len(all_commands())} messages")
        summary = await _send_and_collect(bootstrap, settings, sandbox, metrics_url, workdir, clock, say)
        summary.elapsed_s = clock.monotonic_s() - started_s
        summary.stack = _stack_info(bootstrap, settings, sandbox, worker, metrics_url)
        if keep_running:
            sandbox.detach()
            worker.detach()
        return summary
    finally:
        if not keep_running:
            if worker.process is not None:
                await worker.terminate(15.0)
            await sandbox.stop()


async def wait_ready(worker: WorkerProcess, metrics_url: str, clock: Clock, timeout_s: float = 60.0) -> None:
    """Until the worker's /readyz says 200 (joined its group, logged in to the API)."""
    deadline_s = clock.monotonic_s() + timeout_s
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as http:
        while True:
            if not worker.running:
                raise StackError(f"the worker exited ({worker.returncode}):\n{worker.log_tail()}")
            try:
                if (await http.get(f"{metrics_url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if clock.monotonic_s() >= deadline_s:
                raise StackError(f"the worker was not ready in {timeout_s:g} s:\n{worker.log_tail()}")
            await clock.sleep_s(0.2)


async def _send_and_collect(
    bootstrap: str,
    settings: Settings,
    sandbox: SandboxProcess,
    metrics_url: str,
    workdir: Path,
    clock: Clock,
    say: Say,
) -> DemoSummary:
    commands = all_commands()
    sent = Counter(c["trace_number"] for c in commands if isinstance(c, dict))
    async with ResultTail(bootstrap, settings.results_topic) as tail:
        await produce(bootstrap, settings.commands_topic, commands, key=b"demo")
        complete = await _wait_all(tail, sent, clock, say)
    agreement, _ = await ledger_check(bootstrap, settings, sandbox.admin)
    results = [r for by_id in tail.results.values() for r in by_id.values()]
    journal = {  # journal records (answer markers have no trace number: journal.py)
        r["trace_number"]: r
        for r in await read_json(bootstrap, settings.journal_topic)
        if "trace_number" in r
    }
    moved = Counter(str(e["trace_number"]) for e in await sandbox.admin.ledger())
    stats = await sandbox.admin.stats()
    metrics = await _metrics_excerpt(metrics_url)
    reviews = await _wait_records(bootstrap, settings.review_topic, 1, clock)
    letters = await _wait_records(bootstrap, settings.dlq_topic, len(DEAD_LETTERS), clock)
    return DemoSummary(
        agreement=agreement,
        cases=[
            _case_report(trace, tail.results.get(trace, {}), journal.get(trace), moved[trace])
            for trace in CASES
        ],
        review=reviews[-1] if reviews else None,
        review_ledger=await sandbox.admin.ledger(trace_number=REVIEW_TRACE),
        dead_letters=[str(letter.get("reason", "")) for letter in letters],
        decline_codes=Counter(str(r.get("response_code")) for r in results if r["outcome"] == "declined"),
        metrics_url=metrics_url,
        metrics_excerpt=metrics,
        faults_injected=Counter(stats.get("faults", {})),
        workdir=workdir,
        complete=complete,
        elapsed_s=0.0,
    )


async def _wait_all(tail: ResultTail, sent: Counter[str], clock: Clock, say: Say) -> bool:
    """Until every command message has its result; a counter line on stderr meanwhile."""
    deadline_s = clock.monotonic_s() + WAIT_S
    total = sum(sent.values())
    tty = sys.stderr.isatty()
    last = -1
    while True:
        done = sum(min(len(tail.results.get(trace, {})), n) for trace, n in sent.items())
        if done != last and (tty or done == total):
            print(
                f"\rdemo: {done}/{total} results", end="" if tty and done < total else "\n", file=sys.stderr
            )
            last = done
        if done >= total:
            return True
        if clock.monotonic_s() >= deadline_s:
            say(f"demo: only {done} of {total} results after {WAIT_S:g} s")
            return False
        await clock.sleep_s(0.25)


async def _metrics_excerpt(metrics_url: str) -> list[str]:
    """A few of the worker's own counters, read from its /metrics as anyone would."""
    try:
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
            text = (await http.get(f"{metrics_url}/metrics")).text
    except httpx.HTTPError as exc:
        return [f"(could not read {metrics_url}/metrics: {exc})"]
    wanted = ("ecash_results_total{", "ecash_resolutions_finished_total{", "ecash_dead_letters_total{")
    return [line for line in text.splitlines() if line.startswith(wanted) and not line.endswith(" 0.0")]


async def _wait_records(bootstrap: str, topic: str, count: int, clock: Clock) -> list[dict[str, Any]]:
    deadline_s = clock.monotonic_s() + 20.0
    while True:
        records = await read_json(bootstrap, topic)
        if len(records) >= count or clock.monotonic_s() >= deadline_s:
            return records
        await clock.sleep_s(0.5)


def _case_report(
    trace: str, results: dict[str, dict[str, Any]], journal: dict[str, Any] | None, executions: int
) -> CaseReport:
    case = CASES[trace]
    in_order = sorted(results.values(), key=lambda r: str(r.get("completed_at")))
    actual = tuple(f"{r['outcome']} ({r['resolved_by']})" for r in in_order)
    calls = tuple(_call(a) for a in (journal or {}).get("attempts", []))
    return CaseReport(trace, case.story, case.expected, actual, calls, executions)


def _call(attempt: dict[str, Any]) -> str:
    """``charge: HTTP 500 from the API``, ``status: PAYMENT_NOT_FOUND``: one API call and its answer."""
    answer = attempt.get("response_code")
    if not answer:
        answer = str(attempt.get("detail", "")).split(";")[0].split(" (")[0] or attempt["outcome_class"]
    return f"{attempt['operation']}: {answer}"


def _stack_info(
    bootstrap: str, settings: Settings, sandbox: SandboxProcess, worker: WorkerProcess, metrics_url: str
) -> dict[str, Any]:
    return {
        "bootstrap": bootstrap,
        "commands_topic": settings.commands_topic,
        "results_topic": settings.results_topic,
        "review_topic": settings.review_topic,
        "dlq_topic": settings.dlq_topic,
        "journal_topic": settings.journal_topic,
        "api_base_url": sandbox.base_url,
        "sandbox_admin": sandbox.admin_url,
        "sandbox_pid": sandbox.pid,
        "worker_pid": worker.pid,
        "metrics_url": metrics_url,
    }


# --- what the user reads ---------------------------------------------------------------------------


def render(summary: DemoSummary) -> str:
    check = summary.agreement
    lines = [
        f"\n{check.messages} commands and {len(summary.dead_letters)} unreadable messages, "
        f"{summary.elapsed_s:.0f} s:",
        "  outcomes:  " + _counts(check.outcomes),
        "  declines:  " + _counts(summary.decline_codes),
        "  faults the sandbox injected: " + _counts(summary.faults_injected),
        "",
        "Scripted cases (what the API did -> what the worker concluded; the calls it made):",
    ]
    for case in summary.cases:
        mark = "ok " if case.ok else "!! "
        moved = {0: "no money moved", 1: "money moved once"}.get(case.executions, f"MOVED {case.executions}x")
        lines.append(f"  {mark}{case.trace_number:<10} {case.story}")
        lines.append(f"      -> {', then '.join(case.actual) or 'no result'}; {moved}")
        if not case.ok:
            lines.append(f"      expected {', then '.join(case.expected)}")
        if case.calls:
            lines.append("      calls: " + " | ".join(case.calls))
    lines += _review_lines(summary)
    lines += [
        "",
        "Dead letters: " + (", ".join(r.split(":")[0] for r in summary.dead_letters) or "none"),
        "",
        "Results against the sandbox's ledger (the chaos run's check):",
        f"  money moved for {check.executions} trace numbers; {check.outcomes.get('succeeded', 0)} "
        "results say succeeded",
        f"  double charges {len(check.double_charges)}, lost commands {len(check.lost)}, "
        f"disagreeing with the ledger {len(check.disagreements)}, unresolved {len(check.unresolved)}",
        *(f"  DISAGREES {d.trace_number}: {d.reason}" for d in check.disagreements),
        "",
        f"The worker's metrics: {summary.metrics_url}/metrics (health: /healthz, /readyz), e.g.",
        *(f"  {line}" for line in summary.metrics_excerpt),
        "  look yourself while it runs (--keep-running):",
        f"  curl -s {summary.metrics_url}/metrics | grep ecash_",
        f"Logs: {summary.workdir}",
        "",
        "Everything agrees." if summary.ok else "SOMETHING DOES NOT AGREE: see above.",
    ]
    return "\n".join(lines)


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.most_common()) or "none"


def _review_lines(summary: DemoSummary) -> list[str]:
    review = summary.review
    if review is None:
        return ["", "Manual review: NO review record arrived"]
    moved = summary.review_ledger
    ledger = (
        f"the ledger shows it executed ({moved[0]['type']} {moved[0]['amount']}, "
        f"transaction {moved[0]['transaction_number']})"
        if moved
        else "the ledger shows no execution"
    )
    return [
        "",
        f"Manual review: {review['trace_number']} is {review['state']}",
        f"  {review['last_known_state']}",
        f"  {ledger}: an operator would close it with",
        f"  ecash-worker review resolve {review['trace_number']} --outcome "
        f"{'succeeded' if moved else 'failed'} --by you --reason 'checked the ledger'",
    ]


def render_keep_running(summary: DemoSummary, broker_started: bool) -> str:
    info = summary.stack
    port = info["bootstrap"].rpartition(":")[2]
    port_option = "" if port == str(DEFAULT_PORT) else f" --port {port}"
    stop_kafka = f"; python -m ecash_dev.kafka stop{port_option}" if broker_started else ""
    return "\n".join(
        [
            "",
            "The stack keeps running:",
            f"  worker   pid {info['worker_pid']}, metrics {info['metrics_url']}/metrics",
            f"  sandbox  pid {info['sandbox_pid']}, API {info['api_base_url']}",
            f"           admin {info['sandbox_admin']}",
            f"  kafka    {info['bootstrap']}",
            "Talk to it (ecash-worker send / review / reconcile read these):",
            f"  export ECASH_KAFKA_BOOTSTRAP_SERVERS={info['bootstrap']} "
            f"ECASH_COMMANDS_TOPIC={info['commands_topic']} ECASH_RESULTS_TOPIC={info['results_topic']} "
            f"ECASH_REVIEW_TOPIC={info['review_topic']} ECASH_DLQ_TOPIC={info['dlq_topic']} "
            f"ECASH_JOURNAL_TOPIC={info['journal_topic']} ECASH_API_BASE_URL={info['api_base_url']}",
            "Stop it:",
            f"  kill {info['worker_pid']} {info['sandbox_pid']}{stop_kafka}",
        ]
    )


# --- the command line ----------------------------------------------------------------------------


@click.command(
    "demo",
    cls=Command,
    short_help="the main job on this machine: local Kafka, the sandbox, a worker and ~200 commands",
    help=help_text(__doc__),
)
@click.option("--keep-running", is_flag=True, help="leave broker, sandbox and worker up")
@click.option(
    "--kafka-port",
    type=int,
    default=DEFAULT_PORT,
    help="the local broker's port (ignored with ECASH_KAFKA_BOOTSTRAP_SERVERS)",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help=f"the worker's metrics port (default {DEFAULT_METRICS_PORT}, or a free one if it is taken)",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="logs (default: a new temporary directory)",
)
@click.pass_context
def command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


def run(args: SimpleNamespace) -> int:
    quiet_kafka_logs()
    environ = os.environ
    try:
        port = args.kafka_port
        probe = None if environ.get("ECASH_KAFKA_BOOTSTRAP_SERVERS") else local_broker(environ, port=port)
        was_running = probe is None or probe.status().running
        broker = ensure_broker(environ, port=port, report=say)
    except BrokerError as exc:
        say(f"demo: no Kafka broker: {exc}")
        return 1
    started = not was_running and not isinstance(broker, ExternalKafka)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ecash-demo-"))
    metrics = args.metrics_port or (DEFAULT_METRICS_PORT if _port_free(DEFAULT_METRICS_PORT) else free_port())
    say(f"demo: kafka at {broker.bootstrap}; logs in {workdir}")
    try:
        summary = asyncio.run(
            cancelled_by_sigterm(
                run_demo(broker.bootstrap, workdir, metrics_port=metrics, keep_running=args.keep_running)
            )
        )
    except StackError as exc:
        say(f"demo: {exc}")
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("demo: interrupted; everything it started has been stopped")
        return 130
    finally:
        if started and not args.keep_running:
            broker.stop()
    print(render(summary))
    if args.keep_running:
        print(render_keep_running(summary, started))
    return 0 if summary.ok else 1


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    return commandline.main(command, argv, "python -m ecash_dev.demo")


if __name__ == "__main__":
    sys.exit(main())
