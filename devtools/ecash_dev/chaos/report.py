"""The chaos run's end: read what happened (topics, ledger), judge it, gather evidence, print the table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from ecash_dev.chaos.agreement import Agreement, check_agreement
from ecash_dev.chaos.plan import AMBIGUOUS_KINDS, CROSS_PARTITION_DUPLICATE, TRACE_REUSE
from ecash_dev.stack import SandboxAdmin, TopicRecord, read_to_end
from worker.settings import Settings

EVIDENCE_LOG_LINES = 60  # per trace number and log file


async def read_json(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` as JSON (records that are not a JSON object are skipped)."""
    out = []
    for record in await read_to_end(bootstrap, topic):
        try:
            value = record.json()
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


async def ledger_check(
    bootstrap: str, settings: Settings, admin: SandboxAdmin
) -> tuple[Agreement, dict[str, Any]]:
    """Compare the commands sent, the results published and the sandbox's ledger."""
    commands = await read_json(bootstrap, settings.commands_topic)
    sent = Counter(str(c["trace_number"]) for c in commands if "trace_number" in c)
    results = await read_json(bootstrap, settings.results_topic)
    executions = await admin.ledger()
    stats = await admin.stats()
    return check_agreement(sent, results, executions), stats


def offenders(agreement: Agreement) -> list[str]:
    traces = set(agreement.double_charges) | set(agreement.lost) | set(agreement.result_count_mismatch)
    traces |= set(agreement.unanswered) | set(agreement.acted_on_twice)
    traces |= {d.trace_number for d in agreement.disagreements}
    return sorted(traces)


async def collect_evidence(
    bootstrap: str, settings: Settings, admin: SandboxAdmin, agreement: Agreement, workdir: Path
) -> Path:
    """For every offending trace number: its journal records, results, ledger entries and log lines."""
    wanted = offenders(agreement)
    journal = await read_to_end(bootstrap, settings.journal_topic)
    results = await read_json(bootstrap, settings.results_topic)
    evidence: dict[str, Any] = {}
    for trace in wanted:
        evidence[trace] = {
            "journal": [_journal_entry(r) for r in journal if r.key == trace.encode()],
            "results": [r for r in results if r.get("trace_number") == trace],
            "ledger": await admin.ledger(trace_number=trace),
            "logs": _log_lines(workdir, trace),
        }
    path = workdir / "evidence.json"
    path.write_bytes(orjson.dumps(evidence, option=orjson.OPT_INDENT_2))
    return path


def _journal_entry(record: TopicRecord) -> dict[str, Any]:
    value = record.json() if record.value is not None else None
    return {"partition": record.partition, "offset": record.offset, "value": value}


def _log_lines(workdir: Path, trace: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for log in sorted(workdir.glob("*.log")):
        with log.open(encoding="utf-8", errors="replace") as lines:
            hits = [line.rstrip("\n") for line in lines if trace in line]
        if hits:
            found[log.name] = hits[:EVIDENCE_LOG_LINES]
    return found


# --- the table --------------------------------------------------------------------------------------


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


def ambiguous_share(faults: dict[str, int], calls: dict[str, int]) -> str:
    money_calls = calls.get("charge", 0) + calls.get("credit", 0)
    ambiguous = sum(faults.get(kind, 0) for kind in AMBIGUOUS_KINDS)
    share = 100 * ambiguous / money_calls if money_calls else 0.0
    return f"{ambiguous} of {money_calls} Charge/Credit calls ({share:.1f}%)"


def token_expiry(stats: dict[str, Any]) -> str:
    calls = sum(n for op, n in stats.get("calls", {}).items() if op != "login")
    expired = sum(codes.get("TOKEN_EXPIRED", 0) for codes in stats.get("codes", {}).values())
    killed = stats.get("faults", {}).get("token_expired", 0)
    share = 100 * expired / calls if calls else 0.0
    return f"{expired} of {calls} calls answered TOKEN_EXPIRED ({share:.1f}%); {killed} ended by the fault"


def summary_table(summary: dict[str, Any]) -> str:
    """The human verdict of a chaos run, from its JSON summary."""
    check, opts = summary["check"], summary["options"]
    unresolved = check["unresolved"]
    injected = summary.get("injected", {})
    rows = [
        ("trace numbers sent", check["commands"]),
        ("command messages sent", check.get("messages", check["commands"])),
        ("  of which sent again to another partition", injected.get(CROSS_PARTITION_DUPLICATE, 0)),
        ("  of which reusing a trace number on another wallet", injected.get(TRACE_REUSE, 0)),
        ("results (distinct event ids)", check["results"]),
        ("commands with exactly one distinct result", check["exactly_one"]),
        ("double charges (must be 0)", len(check["double_charges"])),
        ("lost commands (must be 0)", len(check["lost"])),
        ("command messages without a result (must be 0)", sum(check.get("unanswered", {}).values())),
        ("trace numbers with two commands acted on (must be 0)", len(check.get("acted_on_twice", {}))),
        ("results disagreeing with the ledger (must be 0)", len(check["disagreements"])),
        ("results seen twice, read_committed (must be 0)", len(check.get("seen_twice", {}))),
        ("unresolved", len(unresolved)),
        ("outcomes", _counts(check["outcomes"])),
        ("resolved by", _counts(check["resolved_by"])),
        ("ledger executions", check["executions"]),
        ("faults injected", _counts(summary["faults_injected"])),
        ("ambiguous faults", ambiguous_share(summary["faults_injected"], summary["api_calls"])),
        ("token expiry", token_expiry(summary["sandbox_stats"])),
        ("workers killed (kill -9) and restarted", summary["kills"]),
        ("workers frozen (SIGSTOP) past the session, resumed", summary.get("freezes", 0)),
        ("journal records preloaded", opts.get("journal_preload", 0)),
        ("workers that exited on their own", summary["unexpected_worker_exits"]),
        ("broker restarts (crash)", summary["broker_restarts"]),
        ("elapsed", f"{summary['elapsed_s']:.0f} s"),
        ("verdict", "PASS" if summary["ok"] else "FAIL"),
    ]
    width = max(len(name) for name, _ in rows)
    head = (
        f"chaos run: {opts['commands']} commands over {opts['msisdns']} MSISDNs, {opts['workers']} workers, "
        f"seed {opts['seed']}"
    )
    lines = [head, *(f"  {name:<{width}}  {value}" for name, value in rows)]
    for trace, detail in sorted(unresolved.items())[:10]:
        lines.append(f"  unresolved {trace}: {detail}")
    lines += _failures(check)
    lines.append(f"  logs and summary.json in {summary['workdir']}")
    if summary.get("evidence"):
        lines.append(
            f"  evidence (journal, results, ledger, log lines per trace number): {summary['evidence']}"
        )
    return "\n".join(lines)


def _failures(check: dict[str, Any]) -> list[str]:
    lines = [f"  DOUBLE CHARGE {t}: executed {n} times" for t, n in sorted(check["double_charges"].items())]
    lines += [f"  LOST {t}: no result" for t in check["lost"][:20]]
    lines += [
        f"  UNANSWERED {t}: {n} command message(s) without a result"
        for t, n in sorted(check.get("unanswered", {}).items())[:20]
    ]
    lines += [
        f"  ACTED ON TWICE {t}: {n} commands with this trace number acted on"
        for t, n in sorted(check.get("acted_on_twice", {}).items())[:20]
    ]
    lines += [f"  DISAGREES {d['trace_number']}: {d['reason']}" for d in check["disagreements"][:20]]
    lines += [
        f"  {t}: {m} command message(s), {r} distinct result(s)"
        for t, (m, r) in sorted(check["result_count_mismatch"].items())[:20]
    ]
    return lines
