"""``ecash-worker reconcile``: do the worker's results and the E-Cash Transaction History agree?

    ecash-worker reconcile --from 2026-01-01 --to 2026-01-31 [--msisdn M,...] [--agent PREFIX | --any-agent]

Reads every result the worker published (the whole results topic, ``read_committed``) and, for each
wallet involved in the range (or each ``--msisdn``), its Transaction History; compares them per trace
number and lists what disagrees. The results stream through a spool on disk (SQLite in a temporary
directory under $TMPDIR, which must be writable), so memory does not grow with the topic. Days are
calendar days in the API's time (WIB, UTC+7).

Exit codes: 0 everything agrees; 1 something disagrees (or needs attention); 2 configuration error;
3 Kafka or the E-Cash API unreachable.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any, TextIO

import click
from pydantic import ValidationError

from worker.client import parse_result
from worker.commandline import Command, arguments, help_text
from worker.contracts import CommandType, Outcome, Result
from worker.ecash.client import EcashClient
from worker.ecash.codes import canonical
from worker.ecash.errors import ApiError, ApiUnavailable, FatalConfigError
from worker.ecash.models import WIB, HistoryEntry
from worker.ops.api_cli import api_failure
from worker.ops.arguments import DAY, POSITIVE_INT
from worker.ops.command import EXIT_CONFIG, EXIT_NOT_OK, EXIT_OK, OpsError, run_command
from worker.ops.output import Console, Format, mask_msisdn, output_option
from worker.ops.reading import stream_topic
from worker.settings import Settings

__all__ = [
    "COLUMNS",
    "EMPTY_HISTORY_CODES",
    "Finding",
    "Kind",
    "Report",
    "ResultSpool",
    "WalletLine",
    "Window",
    "check_trace",
    "command",
    "finding_row",
    "gather",
    "is_ours",
    "line_day",
    "print_report",
    "read_histories",
    "reconcile",
    "run",
    "settled",
    "signed_amount",
    "summary",
    "wallets_in",
]


class Kind(StrEnum):
    MONEY_WITHOUT_SUCCESS = "money_without_success"  # in history; no result, or not a success
    SUCCESS_WITHOUT_MONEY = "success_without_money"  # a success; not in history
    AMOUNT_MISMATCH = "amount_mismatch"  # both; the signed amounts differ
    WALLET_MISMATCH = "wallet_mismatch"  # both; the money moved on another wallet than the result says
    DUPLICATE_IN_HISTORY = "duplicate_in_history"  # the same trace number executed more than once
    CONFLICTING_RESULTS = "conflicting_results"  # the worker said succeeded and also declined/failed
    UNRESOLVED = "unresolved"  # the worker does not know: settle it with ``review``
    HISTORY_UNAVAILABLE = "history_unavailable"  # a wallet's history could not be read: not compared


@dataclass(frozen=True)
class Window:
    """Calendar days ``first_day`` to ``last_day`` (both included), in the API's time zone."""

    first_day: date
    last_day: date
    tz: tzinfo = WIB

    def __post_init__(self) -> None:
        if self.last_day < self.first_day:
            raise ValueError("the range ends before it starts")

    def contains_day(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day

    def contains(self, instant: datetime) -> bool:
        return self.contains_day(instant.astimezone(self.tz).date())

    def history_range(self) -> tuple[date, date]:
        """The days to ask history for: one more on each side, so that a command finished just after
        midnight still finds money that moved just before it."""
        return self.first_day - timedelta(days=1), self.last_day + timedelta(days=1)


@dataclass(frozen=True)
class WalletLine:
    """A history entry and the wallet whose history it came from."""

    msisdn: str
    entry: HistoryEntry


@dataclass(frozen=True)
class Finding:
    kind: Kind
    trace_number: str | None
    msisdn: str | None
    result_outcome: str | None = None
    result_amount: Decimal | None = None  # signed from the member's side, like history: a charge is < 0
    history_amounts: tuple[Decimal | None, ...] = ()
    transaction_numbers: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class Report:
    window: Window
    findings: tuple[Finding, ...]
    traces_checked: int
    wallets: tuple[str, ...]
    results_read: int = 0
    history_entries: int = 0
    unreadable_results: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        return not self.findings


# --- the results, spooled ---------------------------------------------------------------------------


class ResultSpool:
    """The results read from the topic, kept for the comparison without holding them in memory.

    Each result is one row in SQLite (its trace number and its JSON) in ``directory`` (in memory when
    None: tests); Python holds only the trace numbers with a result completed in the window and their
    wallets (what the report is about), and the results of one trace number at a time while it is
    compared. Results of other wallets than ``wanted`` (when given) are not kept; records that are not
    results are counted (``unreadable``)."""

    BATCH = 1000

    def __init__(
        self, window: Window, *, wanted: Collection[str] | None = None, directory: Path | None = None
    ) -> None:
        self.window = window
        self.wanted = frozenset(wanted) if wanted else None
        path = ":memory:" if directory is None else str(directory / "results.sqlite")
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE results (trace TEXT NOT NULL, body BLOB NOT NULL)")
        self._pending: list[tuple[str, bytes]] = []
        self._indexed = False
        self.in_window: set[str] = set()
        self.wallets: set[str] = set()
        self.count = 0
        self.unreadable = 0

    @classmethod
    def of(cls, results: Iterable[Result], window: Window) -> ResultSpool:
        spool = cls(window)
        for result in results:
            spool.add(result)
        return spool

    def add_record(self, value: bytes | None) -> None:
        """One record of the results topic, as read."""
        result = parse_result(value)
        if result is None:
            self.unreadable += 1
            return
        self.add(result, value)

    def add(self, result: Result, body: bytes | None = None) -> None:
        if self.wanted is not None and result.msisdn not in self.wanted:
            return
        self.count += 1
        if self.window.contains(result.completed_at):
            self.in_window.add(result.trace_number)
            if result.msisdn:
                self.wallets.add(result.msisdn)
        self._pending.append((result.trace_number, body or result.model_dump_json().encode()))
        if len(self._pending) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO results VALUES (?, ?)", self._pending)
            self._db.execute("COMMIT")
            self._pending.clear()

    def grouped(self, traces: Iterable[str]) -> Iterator[tuple[str, list[Result]]]:
        """``(trace, its results)`` for each of ``traces`` (sorted ascending), in one ordered pass over the
        spool: only the results of the trace numbers asked for are parsed, one trace number at a time."""
        self._flush()
        if not self._indexed:
            self._db.execute("CREATE INDEX results_trace ON results (trace)")
            self._indexed = True
        rows = self._db.execute("SELECT trace, body FROM results ORDER BY trace")
        row = next(rows, None)
        for trace in traces:
            while row is not None and row[0] < trace:
                row = next(rows, None)
            found = []
            while row is not None and row[0] == trace:
                if (result := parse_result(row[1])) is not None:
                    found.append(result)
                row = next(rows, None)
            yield trace, found

    def close(self) -> None:
        self._pending.clear()
        self._db.close()

    def __enter__(self) -> ResultSpool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --- the comparison (pure) ------------------------------------------------------------------------

_PRECEDENCE = (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.DECLINED, Outcome.UNRESOLVED, Outcome.REJECTED)


def settled(results: Sequence[Result]) -> Result | None:
    """The result that stands for a trace number: a success beats everything (money moved), a final
    failure beats ``unresolved`` (a manual decision came later), ``rejected`` counts last (a reuse of the
    trace number is rejected without touching the first command). The latest of its outcome."""
    for outcome in _PRECEDENCE:
        matching = [r for r in results if r.outcome is outcome]
        if matching:
            return max(matching, key=lambda r: r.completed_at)
    return None


def signed_amount(result: Result) -> Decimal | None:
    if result.amount is None or result.type is None:
        return None
    return -result.amount if result.type is CommandType.CHARGE else result.amount


def line_day(line: WalletLine, tz: tzinfo) -> date | None:
    entry = line.entry
    if entry.trx_datetime is not None:
        return entry.trx_datetime.astimezone(tz).date()
    return entry.transaction_date


def _distinct(lines: Iterable[WalletLine]) -> list[WalletLine]:
    """Drop a line seen twice (same wallet and transaction number: pages that overlapped)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for line in lines:
        number = line.entry.transaction_number
        if number:
            if (line.msisdn, number) in seen:
                continue
            seen.add((line.msisdn, number))
        out.append(line)
    return out


def reconcile(
    results: Iterable[Result] | ResultSpool,
    history: Iterable[WalletLine],
    window: Window,
    *,
    checked_wallets: Collection[str],
    unavailable: Mapping[str, str] | None = None,
) -> Report:
    """Compare per trace number. In scope: every trace number with a result completed in the window or a
    history line dated in it (undated lines count); the other side is looked up without a date limit.
    ``checked_wallets``: the wallets whose history was read in full (only there can money be missing).
    ``results``: a spool (``gather``'s, streamed from the topic) or any iterable of results."""
    spool = results if isinstance(results, ResultSpool) else ResultSpool.of(results, window)
    unavailable = unavailable or {}
    lines_by_trace: dict[str, list[WalletLine]] = {}
    for line in _distinct(history):
        if line.entry.trace_suffix is not None:
            lines_by_trace.setdefault(line.entry.trace_suffix, []).append(line)
    scope = set(spool.in_window)
    for trace, lines in lines_by_trace.items():
        if any((d := line_day(line, window.tz)) is None or window.contains_day(d) for line in lines):
            scope.add(trace)
    findings = [
        Finding(Kind.HISTORY_UNAVAILABLE, None, msisdn, detail=reason)
        for msisdn, reason in sorted(unavailable.items())
    ]
    for trace, trace_results in spool.grouped(sorted(scope)):
        findings += check_trace(trace, trace_results, lines_by_trace.get(trace, []), checked_wallets)
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.kind.value] = counts.get(finding.kind.value, 0) + 1
    return Report(
        window=window,
        findings=tuple(findings),
        traces_checked=len(scope),
        wallets=tuple(sorted(checked_wallets)),
        results_read=spool.count,
        history_entries=sum(len(ls) for ls in lines_by_trace.values()),
        unreadable_results=spool.unreadable,
        counts=counts,
    )


def check_trace(
    trace: str, results: Sequence[Result], lines: Sequence[WalletLine], checked_wallets: Collection[str]
) -> list[Finding]:
    """Everything that disagrees about one trace number."""
    chosen = settled(results)
    outcomes = {r.outcome for r in results}
    wallet = chosen.msisdn if chosen is not None and chosen.msisdn else None
    if wallet is None and lines:
        wallet = lines[0].msisdn

    def finding(kind: Kind, detail: str) -> Finding:
        return Finding(
            kind=kind,
            trace_number=trace,
            msisdn=wallet,
            result_outcome=chosen.outcome.value if chosen is not None else None,
            result_amount=signed_amount(chosen) if chosen is not None else None,
            history_amounts=tuple(line.entry.amount for line in lines),
            transaction_numbers=tuple(line.entry.transaction_number or "?" for line in lines),
            detail=detail,
        )

    out = []
    if Outcome.SUCCEEDED in outcomes and outcomes & {Outcome.DECLINED, Outcome.FAILED}:
        shown = ", ".join(sorted(o.value for o in outcomes))
        out.append(finding(Kind.CONFLICTING_RESULTS, f"the worker published {shown} for one trace number"))
    if chosen is not None and chosen.outcome is Outcome.UNRESOLVED:
        out.append(finding(Kind.UNRESOLVED, "unresolved: settle it with `ecash-worker review`"))
    if len(lines) > 1:
        out.append(finding(Kind.DUPLICATE_IN_HISTORY, f"executed {len(lines)} times: a double movement"))
    if lines and (chosen is None or chosen.outcome is not Outcome.SUCCEEDED):
        said = "no result" if chosen is None else f"the result says {chosen.outcome.value}"
        out.append(finding(Kind.MONEY_WITHOUT_SUCCESS, f"money moved, but {said}"))
    elif lines and chosen is not None:
        out += _compare(chosen, lines, finding)
    elif chosen is not None and chosen.outcome is Outcome.SUCCEEDED and chosen.msisdn in checked_wallets:
        out.append(finding(Kind.SUCCESS_WITHOUT_MONEY, "succeeded, but not in the wallet's history"))
    return out


def _compare(
    chosen: Result, lines: Sequence[WalletLine], finding: Callable[[Kind, str], Finding]
) -> list[Finding]:
    out: list[Finding] = []
    expected = signed_amount(chosen)
    elsewhere = sorted({line.msisdn for line in lines if line.msisdn != chosen.msisdn})
    if elsewhere:
        shown = ", ".join(m for m in (mask_msisdn(w) for w in elsewhere) if m)
        out.append(finding(Kind.WALLET_MISMATCH, f"the money moved on another wallet ({shown})"))
    if any(line.entry.amount is None or line.entry.amount != expected for line in lines):
        raw = ", ".join(line.entry.amount_raw or "?" for line in lines)
        out.append(finding(Kind.AMOUNT_MISMATCH, f"history shows {raw}; the result means {expected}"))
    return out


# --- the CLI ----------------------------------------------------------------------------------------

EMPTY_HISTORY_CODES = frozenset({"MEMBER_NOT_FOUND", "MEMBER_NOT_REGISTERED"})  # no wallet, no money
COLUMNS = (
    "kind",
    "trace_number",
    "msisdn",
    "result_outcome",
    "result_amount",
    "history_amounts",
    "transaction_numbers",
    "detail",
)


def _wallets(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> list[str] | None:
    """``--msisdn A --msisdn B`` or ``--msisdn A,B``: the wallets, or None (every wallet)."""
    wallets = [wallet for value in values for wallet in value.replace(",", " ").split()]
    return wallets or None


@click.command(
    "reconcile",
    cls=Command,
    short_help="compare the published results with the E-Cash transaction history",
    help=help_text(__doc__),
    exclusive=[("agent", "any_agent")],
)
@click.option("--from", "start", type=DAY, required=True, metavar="YYYY-MM-DD", help="first day (WIB)")
@click.option("--to", "end", type=DAY, required=True, metavar="YYYY-MM-DD", help="last day (WIB), included")
@click.option(
    "--msisdn",
    multiple=True,
    callback=_wallets,
    metavar="M",
    help="only these wallets, repeatable or comma-separated (default: every wallet with a result in the "
    "range); needed to find money moved on a wallet the worker never published a result for",
)
@click.option(
    "--agent",
    default=None,
    metavar="PREFIX",
    help="history entries are ours when their trace number starts with PREFIX- or their username is "
    "PREFIX (default: ECASH_API_USERNAME)",
)
@click.option(
    "--any-agent", is_flag=True, help="count every history entry with a trace number (not with --agent)"
)
@click.option("--page-size", type=POSITIVE_INT, default=50, help="history page size")
@output_option
@click.pass_context
def command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


def run(args: SimpleNamespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    async def body(settings: Settings, console: Console) -> int:
        if args.end < args.start:
            raise OpsError("--to is before --from", EXIT_CONFIG)
        agent = None if args.any_agent else (args.agent or settings.api_username)
        report = await gather(
            settings, Window(args.start, args.end), args.msisdn, agent, args.page_size, console
        )
        print_report(report, console)
        return EXIT_OK if report.agrees else EXIT_NOT_OK

    return run_command("reconcile", args, body, out, err)


def is_ours(entry: HistoryEntry, agent: str | None) -> bool:
    if entry.trace_number is None:
        return False
    if agent is None:
        return True
    prefix, sep, _ = entry.trace_number.partition("-")
    return (bool(sep) and prefix == agent) or entry.username == agent


def wallets_in(results: Iterable[Result], window: Window) -> list[str]:
    return sorted({r.msisdn for r in results if r.msisdn and window.contains(r.completed_at)})


async def gather(
    settings: Settings,
    window: Window,
    wanted: Sequence[str] | None,
    agent: str | None,
    page_size: int,
    console: Console,
) -> Report:
    with (
        tempfile.TemporaryDirectory(prefix="ecash-reconcile-") as directory,
        ResultSpool(window, wanted=wanted, directory=Path(directory)) as spool,
    ):
        progress = console.progress(f"reading {settings.results_topic}", unit="results")
        try:
            await stream_topic(
                settings,
                settings.results_topic,
                "ECASH_RESULTS_TOPIC",
                lambda message: spool.add_record(message.value),
                progress=progress,
            )
        finally:
            progress.done()
        wallets = sorted(set(wanted)) if wanted else sorted(spool.wallets)
        lines, unavailable = await read_histories(settings, wallets, window, agent, page_size, console)
        checked = [w for w in wallets if w not in unavailable]
        return reconcile(spool, lines, window, checked_wallets=checked, unavailable=unavailable)


async def read_histories(
    settings: Settings,
    wallets: Sequence[str],
    window: Window,
    agent: str | None,
    page_size: int,
    console: Console,
) -> tuple[list[WalletLine], dict[str, str]]:
    """Every wallet's history over the window (a day wider each side), only the entries that are ours."""
    start, end = window.history_range()
    lines: list[WalletLine] = []
    unavailable: dict[str, str] = {}
    progress = console.progress("reading history", unit="wallets", total=len(wallets))
    try:
        async with EcashClient(settings) as client:
            for done, msisdn in enumerate(wallets):
                progress.update(done)
                try:
                    async for entry in client.history(msisdn, start, end, page_size=page_size):
                        if is_ours(entry, agent):
                            lines.append(WalletLine(msisdn, entry))
                except ApiError as exc:
                    if canonical(exc.code) not in EMPTY_HISTORY_CODES:
                        unavailable[msisdn] = str(exc)
    except (FatalConfigError, ValidationError, ApiUnavailable) as exc:
        raise api_failure(settings, exc) from None
    finally:
        progress.done()
    return lines, unavailable


def finding_row(finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "trace_number": finding.trace_number,
        "msisdn": finding.msisdn,
        "result_outcome": finding.result_outcome,
        "result_amount": finding.result_amount,
        "history_amounts": list(finding.history_amounts),
        "transaction_numbers": list(finding.transaction_numbers),
        "detail": finding.detail,
    }


def summary(report: Report) -> dict[str, Any]:
    return {
        "from": report.window.first_day,
        "to": report.window.last_day,
        "time_zone": str(report.window.tz),
        "agrees": report.agrees,
        "traces_checked": report.traces_checked,
        "wallets_checked": len(report.wallets),
        "results_read": report.results_read,
        "history_entries_read": report.history_entries,
        "unreadable_results": report.unreadable_results,
        "disagreements": report.counts,
    }


def print_report(report: Report, console: Console) -> None:
    rows = [finding_row(f) for f in report.findings]
    if console.fmt is Format.JSON:
        console.record({"summary": summary(report), "findings": rows})
        return
    if console.fmt is Format.CSV:
        console.rows(rows, COLUMNS)
        return
    if rows:
        console.rows(rows, COLUMNS)
    verdict = (
        "all agree"
        if report.agrees
        else f"{len(report.findings)} to look at: "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(report.counts.items()))
    )
    console.out.write(
        f"{report.window.first_day} to {report.window.last_day} (WIB): {report.traces_checked} trace "
        f"numbers on {len(report.wallets)} wallets checked; {verdict}\n"
    )
