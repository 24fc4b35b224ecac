"""The throughput benchmark: the worker, side by side with the naive design, on the same data.

    python -m bench.run                                          # the default scenarios, every design
    python -m bench.run --scenario uniform-50ms --design worker --transport aiohttp
    python -m bench.run --scenario small --json-out bench.json   # the CI-sized run

For each run: a fresh set of topics (12 partitions) on a local broker (started on free ports, or
``--bootstrap``), a fresh sandbox in its own process (``ecash-worker sandbox --latency-ms L
--auto-create-wallets``), N commands pre-loaded (or produced at a fixed rate), then the design under test
in its own process, measured until every result is published. Figures: throughput, latency, CPU per
1,000 commands (from /proc/<pid>/stat), peak RSS (VmHWM), and for the worker its journal restore time on
a restart. One table on stdout, JSON with ``--json-out``. See bench/README.md and docs/performance.md.

This module is the command line; the rest by concern: ``scenarios`` (what is run), ``topics`` (producing,
counting and reading), ``processes`` (the design and the sandbox as processes), ``sampling`` (CPU and
memory from /proc while a design runs), ``measuring`` (one run), ``figures`` (what a run left behind,
as figures), ``reporting`` (the table, the targets, the JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.figures import RunFigures
from bench.measuring import run_one
from bench.processes import WRAPPERS
from bench.reporting import print_report, write_report
from bench.scenarios import (
    DEFAULT_SCENARIOS,
    DESIGNS,
    SCENARIOS,
    TRANSPORTS,
    WORKER_DESIGNS,
    Context,
    Scenario,
)
from bench.whatif import CHILDREN


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable")
    parser.add_argument(
        "--design", action="append", choices=DESIGNS, help="repeatable (default: worker, baseline)"
    )
    parser.add_argument(
        "--transport", action="append", choices=TRANSPORTS, help="the worker's ECASH_HTTP_TRANSPORT"
    )
    parser.add_argument("--commands", type=int, help="override the scenario's number of commands")
    parser.add_argument("--msisdns", type=int, help="override the scenario's number of MSISDNs")
    parser.add_argument("--latency-ms", type=float, help="override the scenario's API latency")
    parser.add_argument("--rate", type=float, help="produce at this rate while running (commands/s)")
    parser.add_argument("--max-in-flight", type=int, default=256, help="ECASH_MAX_IN_FLIGHT (default 256)")
    parser.add_argument(
        "--env", action="append", default=[], metavar="ECASH_X=VALUE", help="more worker settings"
    )
    parser.add_argument("--log-level", default="INFO", help="the worker's ECASH_LOG_LEVEL (default INFO)")
    parser.add_argument("--bootstrap", help="an existing broker (default: a local one on free ports)")
    parser.add_argument(
        "--broker-pid", type=int, help="with --bootstrap: the broker's pid, to report its CPU"
    )
    parser.add_argument("--work-dir", type=Path, help="logs, state and per-run JSON (default: a temp dir)")
    parser.add_argument("--json-out", type=Path, help="write every figure here")
    parser.add_argument("--no-restore", action="store_true", help="skip the restart that times the restore")
    parser.add_argument(
        "--profile",
        choices=("none", "pyinstrument", "py-spy", "py-spy-svg", *WRAPPERS),
        default="none",
        help="py-spy: collapsed stacks (profile.collapsed); py-spy-svg: a flame graph (profile.svg); "
        "kafka-requests: each Kafka request type's round trips (kafka-requests.txt); "
        "gc: the cycle collector's passes and pauses by generation (gc.txt); "
        "memory: RSS beside Python's, glibc's and SQLite's memory every 5 s (memory.tsv)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sample-interval-s", type=float, default=0.5)
    parser.add_argument("--timeout-s", type=float, help="per run (default: max(600, N/20) s)")
    parser.add_argument(
        "--worker-src",
        type=Path,
        help="run the designs from this source tree (a directory holding worker/): compare two versions",
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        metavar="CORES",
        help="before each run, wait until other processes use fewer cores than this (a shared machine)",
    )
    parser.add_argument("--quiet-wait-s", type=float, default=600.0, help="the longest such wait")
    parser.add_argument("--replicas", type=int, default=1, help="worker processes in one group (default 1)")
    parser.add_argument("--child", choices=tuple(CHILDREN), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def scenarios_of(args: argparse.Namespace) -> list[Scenario]:
    chosen = [SCENARIOS[name] for name in (args.scenario or DEFAULT_SCENARIOS)]
    changes: dict[str, Any] = {}
    if args.commands is not None:
        changes["commands"] = args.commands
    if args.msisdns is not None:
        changes["msisdns"] = args.msisdns
    if args.latency_ms is not None:
        changes["latency_ms"] = args.latency_ms
    if args.rate is not None:
        changes["rate_per_s"] = args.rate
    return [replace(s, **changes) for s in chosen]


def plan(args: argparse.Namespace) -> list[tuple[Scenario, str, str]]:
    designs = args.design or ["worker", "baseline"]
    transports = args.transport or list(TRANSPORTS)
    runs: list[tuple[Scenario, str, str]] = []
    for scenario in scenarios_of(args):
        for design in designs:
            for transport in transports if design in WORKER_DESIGNS else ["httpx"]:
                runs.append((scenario, design, transport))
    return runs


@contextlib.contextmanager
def broker(args: argparse.Namespace, work_dir: Path) -> Iterator[tuple[str, int | None]]:
    if args.bootstrap:
        yield args.bootstrap, args.broker_pid
        return
    from ecash_dev.kafka import LocalKafka, LocalKafkaConfig, default_cache_dir, free_ports

    port, controller = free_ports(2)
    config = LocalKafkaConfig(
        data_dir=work_dir / "kafka",
        cache_dir=default_cache_dir(os.environ),
        port=port,
        controller_port=controller,
    )
    local = LocalKafka(config, java_home=os.environ.get("JAVA_HOME"))
    local.start()
    try:
        yield local.bootstrap, local.pid()
    finally:
        local.stop()


async def main_async(args: argparse.Namespace) -> int:
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="ecash-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    extra = dict(item.split("=", 1) for item in args.env)
    runs: list[RunFigures] = []
    with broker(args, work_dir) as (bootstrap, broker_pid):
        ctx = Context(
            bootstrap, broker_pid, work_dir, args.max_in_flight, extra, args.log_level,
            not args.no_restore, args.profile, args.seed, args.sample_interval_s, args.timeout_s,
            args.worker_src.resolve() if args.worker_src else None, args.quiet_below, args.quiet_wait_s,
            args.replicas,
        )  # fmt: skip
        for scenario, design, transport in plan(args):
            runs.append(await run_one(ctx, scenario, design, transport))
    print_report(runs)
    if args.json_out:
        write_report(args.json_out, runs)
    return 0 if all(r.complete for r in runs) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        return CHILDREN[args.child]()
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries while new topics elect leaders
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
