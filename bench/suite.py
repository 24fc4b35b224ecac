"""The whole performance campaign of docs/performance.md, one ``bench.run`` per part, on one broker.

    python -m bench.suite                         # every part, full size (hours: soak-1m is a million)
    python -m bench.suite --part shares --part latency --commands 30000 --out /tmp/perf

Parts (``--part``, repeatable; default all, in this order):

- ``throughput``: ``uniform-0ms``, ``uniform-50ms``, ``skewed-50ms``; the worker and the baseline.
- ``shares``: ``uniform-50ms``; the worker and each what-if with one mechanism off (``bench/whatif.py``):
  transactions, the journal, the claims, tracing. The shares come from one run each, side by side.
- ``uvloop``: ``uniform-50ms``; the worker with ``ECASH_EVENT_LOOP=uvloop`` (set against ``shares``'s).
- ``latency``: ``paced-50ms`` produced at 50% and at 90% of the capacity ``shares`` measured for the
  worker (``--capacity`` to give it instead): latency from a command's timestamp to its result.
- ``floor``: ``bench.promise_floor``: what a command's I/O alone costs (the bare HTTP request, the
  worker's client, the promise's Kafka writes, all of them) at full speed, then all of it at 50 ms produced
  at 50% of the capacity ``shares`` measured: the least any worker could cost and wait here.
- ``scale-out``: ``uniform-50ms`` with 8 in flight per process (neither process near a core of its own on a
  2-core machine that also runs the broker and the sandbox), one process then two in one group.
- ``soak``: ``soak-1m``: a million commands pre-loaded, run to the end; RSS over the run, and where it sits
  (``--profile memory``: Python's, glibc's and SQLite's memory every 5 s, in the run's ``memory.tsv``).

Each part writes ``<out>/<part>.json`` (``--json-out`` of ``bench.run``, or of ``bench.promise_floor``
for ``floor``) and its logs under ``<out>/<part>/``;
``<out>/suite.json`` gathers them with the commands that made them. ``--commands`` (and ``--msisdns``)
scale every part but ``soak`` down for a shorter campaign; the soak keeps its million unless
``--soak-commands`` says otherwise.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.run import broker

__all__ = ["PARTS", "Part", "main", "part_argv"]

WHAT_IFS = ("worker-notxn", "worker-nojournal", "worker-noclaims", "worker-notracing")
SCALE_OUT_IN_FLIGHT = "8"  # docs/performance.md, "Scale-out": at 32 one process alone takes 0.7 cores here
PARTS = ("throughput", "shares", "uvloop", "latency", "floor", "scale-out", "soak")


@dataclass(frozen=True)
class Part:
    """One benchmark invocation of a part: its name (the JSON file), its arguments and its module."""

    name: str
    argv: list[str]
    module: str = "bench.run"


def _sized(args: argparse.Namespace) -> list[str]:
    sized = [] if args.commands is None else ["--commands", str(args.commands)]
    return sized + ([] if args.msisdns is None else ["--msisdns", str(args.msisdns)])


def part_argv(part: str, args: argparse.Namespace, capacity_per_s: float | None) -> list[Part]:
    """The ``bench.run`` arguments of ``part`` (several for ``latency`` and ``scale-out``)."""
    worker = ["--design", "worker", "--transport", "aiohttp"]
    backlog = ["--scenario", "uniform-50ms", *_sized(args), "--no-restore"]
    if part == "throughput":
        scenarios = ["--scenario", "uniform-0ms", "--scenario", "uniform-50ms", "--scenario", "skewed-50ms"]
        restore = ["--no-restore"] if args.no_restore else []
        return [Part(part, [*scenarios, *_sized(args), *worker, "--design", "baseline", *restore])]
    if part == "shares":
        what_ifs = [arg for design in WHAT_IFS for arg in ("--design", design)]
        return [Part(part, [*backlog, *worker, *what_ifs])]
    if part == "uvloop":
        return [Part(part, [*backlog, *worker, "--env", "ECASH_EVENT_LOOP=uvloop"])]
    if part in ("latency", "floor") and capacity_per_s is None:
        raise SystemExit(f"bench.suite: the {part} part needs a capacity (run shares first, or --capacity)")
    if part == "latency":
        assert capacity_per_s is not None
        return [
            Part(f"latency-{share}", ["--scenario", "paced-50ms", *_sized(args), *worker, "--no-restore",
                                      "--rate", f"{capacity_per_s * share / 100:.0f}"])
            for share in (50, 90)
        ]  # fmt: skip
    if part == "floor":
        assert capacity_per_s is not None
        paced = ["--leg", "floor", "--latency-ms", "50", "--rate", f"{capacity_per_s * 0.5:.0f}"]
        return [
            Part(part, _sized(args), module="bench.promise_floor"),
            Part("floor-50", [*paced, *_sized(args)], module="bench.promise_floor"),
        ]
    if part == "scale-out":
        return [
            Part(
                f"scale-out-{n}",
                [*backlog, *worker, "--max-in-flight", SCALE_OUT_IN_FLIGHT, "--replicas", str(n)],
            )
            for n in (1, 2)
        ]
    if part == "soak":
        soak = ["--scenario", "soak-1m", *worker, "--no-restore", "--profile", "memory"]
        return [
            Part(part, soak + ([] if args.soak_commands is None else ["--commands", str(args.soak_commands)]))
        ]
    raise ValueError(part)


def _worker_throughput(report_path: Path) -> float | None:
    report: dict[str, Any] = orjson.loads(report_path.read_bytes())
    for run in report["runs"]:
        if run["design"] == "worker" and run["throughput_per_s"]:
            return float(run["throughput_per_s"])
    return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", action="append", choices=PARTS, help="repeatable (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="where the reports go (default: a temp dir)")
    parser.add_argument("--commands", type=int, default=None, help="every part but soak: this many commands")
    parser.add_argument("--msisdns", type=int, default=None, help="every part but soak: this many MSISDNs")
    parser.add_argument("--soak-commands", type=int, default=None, help="soak: this many (default 1,000,000)")
    parser.add_argument(
        "--no-restore", action="store_true", help="throughput: skip the restart that times the restore"
    )
    parser.add_argument("--capacity", type=float, default=None, help="latency: cmd/s taken as 100%%")
    parser.add_argument("--bootstrap", default=None, help="an existing broker (default: one started here)")
    parser.add_argument("--broker-pid", type=int, default=None, help="with --bootstrap: its pid")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="ecash-bench-suite-"))
    out.mkdir(parents=True, exist_ok=True)
    chosen = [p for p in PARTS if p in (args.part or PARTS)]
    capacity = args.capacity
    done: list[dict[str, Any]] = []
    failed = False
    with broker(argparse.Namespace(bootstrap=args.bootstrap, broker_pid=args.broker_pid), out) as (
        bootstrap,
        broker_pid,
    ):
        where = ["--bootstrap", bootstrap] + ([] if broker_pid is None else ["--broker-pid", str(broker_pid)])
        for name in chosen:
            for part in part_argv(name, args, capacity):
                report = out / f"{part.name}.json"
                argv = [*part.argv, *where, "--work-dir", str(out / part.name), "--json-out", str(report)]
                command = [sys.executable, "-m", part.module, *argv]
                print(f"== {part.name}: python -m {part.module} {shlex.join(part.argv)}", flush=True)
                code = subprocess.run(command, check=False).returncode  # noqa: S603 - our own bench module, argv built here
                failed = failed or code != 0
                done.append(
                    {
                        "part": part.name,
                        "module": part.module,
                        "argv": part.argv,
                        "exit": code,
                        "report": report.name,
                    }
                )
                if part.name == "shares" and report.exists() and args.capacity is None:
                    capacity = _worker_throughput(report)
    (out / "suite.json").write_bytes(orjson.dumps({"parts": done}, option=orjson.OPT_INDENT_2))
    print(f"reports in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
