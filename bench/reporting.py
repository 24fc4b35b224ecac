"""The report: one line per run, the table, the targets and ratios, the machine, the JSON."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from bench.figures import RunFigures
from bench.sampling import status_line_kib


def summary_line(f: RunFigures) -> str:
    return (
        f"{'complete' if f.complete else 'INCOMPLETE'}: {f.results_distinct}/{f.commands} results, "
        f"{f.throughput_per_s} cmd/s (steady {f.steady_per_s}), e2e p50 {f.end_to_end_ms.get('p50')} ms, "
        f"service p50 {f.service_ms.get('p50')} ms, {f.design_cpu_ms_per_1000} CPU ms/1k, "
        f"peak RSS {f.peak_rss_mib} MiB, cores worker/sandbox/kafka/others "
        f"{f.design_cores}/{f.sandbox_cores}/{f.broker_cores}/{f.others_cores}"
    )


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


def report(runs: list[RunFigures]) -> dict[str, Any]:
    """Every figure, with the machine, the command line and the targets: what ``--json-out`` writes."""
    return {
        "machine": machine(),
        "argv": sys.argv,
        "runs": [asdict(r) for r in runs],
        "targets": targets(runs),
    }


def write_report(path: Path, runs: list[RunFigures]) -> None:
    path.write_bytes(orjson.dumps(report(runs), option=orjson.OPT_INDENT_2))


def print_report(runs: list[RunFigures]) -> None:
    """The table, then each worker run's claim -> intent, its ratio to the baseline, and the targets."""
    print(table(runs))
    for r in runs:
        steady = r.end_to_end_steady_ms
        if r.rate_per_s is not None and steady.get("p50") is not None:
            print(
                f"{r.scenario}: {r.design} ({r.transport}): steady load (commands between the 10th and the "
                f"90th percentile of their times): e2e p50/p95/p99 {steady['p50']}/{steady['p95']}/"
                f"{steady['p99']} ms"
            )
    for r in runs:
        if r.claim_to_intent_ms.get("p50") is not None:
            c = r.claim_to_intent_ms
            print(
                f"{r.scenario}: {r.design} ({r.transport}): claim -> intent p50/p99 {c['p50']}/{c['p99']} ms"
            )
    for r in runs:
        w = r.writes
        if w.get("transactions"):
            print(
                f"{r.scenario}: {r.design} ({r.transport}): transactions {w['transactions']:.0f}, "
                f"{w['records_per_transaction']} records each, mean wait {w['transaction_wait_ms']} ms + "
                f"commit {w['transaction_ms']} ms; claim read back in {w['claim_read_back_ms']} ms; "
                f"event loop {w['loop_lag_ms']} ms late (means)"
            )
    for line in ratio_lines(runs):
        print(line)
    for target in targets(runs):
        print(target_line(target))
