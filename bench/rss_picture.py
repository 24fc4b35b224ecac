"""The worker's memory over a run, as a picture: RSS against the results published so far.

    python -m bench.rss_picture <bench.run --json-out file> docs/perf/soak-1m-rss.png [--memory memory.tsv]

Reads the ``rss_series`` a worker run recorded (``bench/figures.py``: up to 200 samples of seconds, results
so far, RSS in MiB) and draws RSS against results, with the ±10% band around the median of the second
half (the "flat" of docs/performance.md). With ``--memory`` (the ``memory.tsv`` of a ``--profile memory``
run) a second panel puts the RSS on its allocators over the run's seconds (``bench/memory_probe.py``).
Needs matplotlib (the ``docs`` extra).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.dashboard_snapshot.draw import require_matplotlib

__all__ = ["allocator_series", "flat_band", "main"]


def flat_band(rss_mib: Sequence[float]) -> tuple[float, float, float]:
    """The median RSS of the run's second half and the ±10% around it."""
    settled = list(rss_mib[len(rss_mib) // 2 :]) or list(rss_mib)
    middle = statistics.median(settled)
    return middle, middle * 0.9, middle * 1.1


def _worker_run(report: dict[str, Any]) -> dict[str, Any]:
    for run in report["runs"]:
        if run["design"].startswith("worker") and run.get("rss_series"):
            return dict(run)
    raise SystemExit("no worker run with an RSS series in this report")


def allocator_series(memory_tsv: str) -> dict[str, list[float]]:
    """``memory.tsv``'s columns in MiB by allocator, with what none of them holds (Python's own arenas,
    the interpreter and its libraries, stacks) as the RSS less glibc's heap and mappings."""
    header, *rows = memory_tsv.splitlines()
    names = header.split("\t")
    table = [dict(zip(names, (float(v) for v in row.split("\t")), strict=True)) for row in rows if row]
    series: dict[str, list[float]] = {
        "seconds": [r["elapsed_s"] for r in table],
        "RSS": [r["rss_kib"] / 1024 for r in table],
        "glibc heap in use (SQLite's included)": [r["heap_in_use_kib"] / 1024 for r in table],
        "glibc heap free but kept": [r["heap_free_kept_kib"] / 1024 for r in table],
        "glibc mmap blocks": [r["mmap_kib"] / 1024 for r in table],
        "SQLite": [r["sqlite_kib"] / 1024 for r in table],
    }
    series["Python's arenas, code and the rest"] = [
        (r["rss_kib"] - r["heap_in_use_kib"] - r["heap_free_kept_kib"] - r["mmap_kib"]) / 1024 for r in table
    ]
    return series


def draw(run: dict[str, Any], out: Path, memory_tsv: str | None = None) -> str:
    require_matplotlib()
    plt = importlib.import_module("matplotlib.pyplot")
    series = run["rss_series"]
    results = [point[1] for point in series]
    rss = [point[2] for point in series]
    middle, low, high = flat_band(rss)
    inside = sum(low <= value <= high for value in rss[len(rss) // 2 :])
    if memory_tsv is None:
        fig, ax = plt.subplots(figsize=(8, 3.6), dpi=110)
    else:
        fig, (ax, parts) = plt.subplots(2, 1, figsize=(8, 7.0), dpi=110)
        _draw_allocators(parts, allocator_series(memory_tsv))
    ax.axhspan(low, high, color="#cde8d0", label=f"±10% of {middle:.0f} MiB")
    ax.plot(results, rss, color="#2a6fb0", linewidth=1.6, label="worker RSS")
    ax.set_xlabel("results published (the results topic's end offsets: commit markers count too)")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(0, max(rss) * 1.15)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _pos: f"{x:,.0f}"))
    title = f"{run['scenario']}: {run['commands']:,} commands, peak {max(rss):.0f} MiB"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    second_half = len(rss) - len(rss) // 2
    return f"{title}; second half within ±10% of its median: {inside}/{second_half} samples"


def _draw_allocators(ax: Any, series: dict[str, list[float]]) -> None:
    seconds = series.pop("seconds")
    for name, values in series.items():
        ax.plot(seconds, values, linewidth=2.0 if name == "RSS" else 1.2, label=name)
    ax.set_xlabel("seconds since the worker started")
    ax.set_ylabel("MiB")
    ax.set_ylim(0, max(series["RSS"]) * 1.15)
    ax.set_title("where the RSS sits (--profile memory)", fontsize=10)
    ax.legend(loc="center right", fontsize=7)
    ax.grid(alpha=0.3)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rss_picture", description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="a bench.run --json-out file")
    parser.add_argument("out", type=Path, help="the picture to write (.png or .svg)")
    parser.add_argument("--memory", type=Path, help="the run's memory.tsv (--profile memory): a second panel")
    args = parser.parse_args(argv)
    memory = args.memory.read_text("utf-8") if args.memory else None
    print(draw(_worker_run(orjson.loads(args.report.read_bytes())), args.out, memory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
