"""``python -m bench.dashboard_snapshot``: run, scrape, draw docs/dashboard.png (see docs/dashboard.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import bench.dashboard_snapshot as package
from bench.dashboard_snapshot.draw import render, require_matplotlib
from bench.dashboard_snapshot.panels import REPO, clock_label, story
from bench.dashboard_snapshot.prometheus import prometheus_binary
from bench.dashboard_snapshot.run import Recording, RunOptions, record_run, say
from ecash_dev.stack import cancelled_by_sigterm

DEFAULT_OUT = REPO / "docs" / "dashboard.png"


def about(meta: Mapping[str, Any]) -> list[str]:
    """Two lines under the dashboard's title: what ran, and what this picture is."""
    options = meta["options"]
    events = {e["event"]: float(e["at_s"]) for e in meta["events"]}
    outage = ""
    if "API cut" in events and "API back" in events:
        cut, back = clock_label(events["API cut"]), clock_label(events["API back"])
        outage = f"; the API unreachable from {cut} to {back}"
    window_s = float(meta["rate_interval_s"])
    return [
        f"A real run: {options['rate_per_s']:.0f} commands/s for {clock_label(options['duration_s'])} over "
        f"{options['msisdns']:,} MSISDNs, one worker, the sandbox with faults{outage} (shaded).",
        "Drawn by bench/dashboard_snapshot from a real Prometheus that scraped the worker every second, "
        f"answering the dashboard's own queries ($__rate_interval = {window_s:g} s); not a Grafana "
        "screenshot. Time axis: minutes since the worker started.",
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = RunOptions()
    parser.add_argument("--rate", type=float, default=defaults.rate_per_s, help="commands sent per second")
    parser.add_argument("--duration-s", type=float, default=defaults.duration_s, help="how long to send")
    parser.add_argument("--msisdns", type=int, default=defaults.msisdns)
    parser.add_argument(
        "--outage-at-s", type=float, default=defaults.outage_at_s, help="after the first send"
    )
    parser.add_argument(
        "--outage-s", type=float, default=defaults.outage_s, help="the API unreachable this long"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="logs, Prometheus' data and answers.json (default: a new temp dir)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the PNG (default: docs/dashboard.png)")
    parser.add_argument(
        "--from-answers", type=Path, default=None, help="draw a saved answers.json again; no run"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard_snapshot",
        description=package.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    require_matplotlib()
    if args.from_answers is not None:
        recording = Recording.load(args.from_answers)
    else:
        if prometheus_binary() is None:
            say("dashboard: prometheus is not installed: bash scripts/ensure-prometheus.sh")
            return 2
        options = RunOptions(
            rate_per_s=args.rate,
            duration_s=args.duration_s,
            msisdns=args.msisdns,
            outage_at_s=args.outage_at_s,
            outage_s=args.outage_s,
            seed=args.seed,
            workdir=args.workdir,
        )
        try:
            options.validate()
        except ValueError as exc:
            say(f"dashboard: {exc}")
            return 2
        logging.getLogger("aiokafka").addHandler(logging.NullHandler())
        try:
            recording = asyncio.run(cancelled_by_sigterm(record_run(options)))
        except (KeyboardInterrupt, asyncio.CancelledError):
            say("dashboard: interrupted; everything it started is stopped")
            return 130
        saved = Path(recording.meta["workdir"]) / "answers.json"
        recording.save(saved)
        say(f"dashboard: {len(recording.answers)} expressions answered by Prometheus, saved in {saved}")
    meta = recording.meta
    render(meta, recording.answers, recording.grid, args.out, about(meta))
    rate_interval_s = float(meta["rate_interval_s"])
    print("\n".join(story(meta, recording.answers, recording.final, recording.grid, rate_interval_s)))
    say(f"dashboard: wrote {args.out}")
    return 0 if meta.get("agreement", {}).get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
