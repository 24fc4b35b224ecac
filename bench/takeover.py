"""How long a worker's partitions stand idle after each assignment: at its start, when a second replica
joins, and when that replica leaves again, under a steady load.

    python -m bench.takeover [--bootstrap HOST:PORT] [--worker-src DIR] [--rate 200]

Worker A starts; the load starts; worker B joins the group; B stops (SIGTERM) and A takes every partition
back. Each assignment (with the eager protocol a rebalance revokes and assigns every partition, so each
one is restored again) is printed with the time from the assignment to its first and to its last
partition active, read from A's log. Starts its own broker unless ``--bootstrap``; ``--worker-src``
runs another tree's worker (as ``bench.run``'s), to set builds side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import orjson

from bench.measuring import wait_until_owned
from bench.processes import Replicas, design_argv, design_env, replicas_of, start_sandbox
from bench.run import broker
from bench.scenarios import SCENARIOS, Context, workload
from bench.topics import Topics, create_topics, produce

__all__ = ["Wave", "activation_waves", "main"]

ACTIVE_MARK = " active (journal"


@dataclass
class Wave:
    """One assignment of the worker, and when each of its partitions became active after it."""

    partitions: int
    active_after_s: list[float] = field(default_factory=list)

    def line(self) -> str:
        if not self.active_after_s:
            return f"{self.partitions} assigned: none active"
        first, last = min(self.active_after_s), max(self.active_after_s)
        return f"{self.partitions} assigned: first active {first * 1000:.0f} ms, last {last * 1000:.0f} ms"


def _when_s(entry: dict[str, object]) -> float:
    return datetime.fromisoformat(str(entry["ts"]).replace("Z", "+00:00")).timestamp()


def activation_waves(log_lines: Iterable[str | bytes]) -> list[Wave]:
    """The assignments in a worker's JSON log (``partitions_changed`` with partitions assigned), each with
    the seconds from it to every ``partition N active`` line that followed, until the next one."""
    waves: list[Wave] = []
    started_s = 0.0
    for line in log_lines:
        if not line.strip():
            continue
        entry = orjson.loads(line)
        if entry.get("event") == "partitions_changed" and entry.get("assigned"):
            started_s = _when_s(entry)
            waves.append(Wave(len(entry["assigned"])))
        elif waves and ACTIVE_MARK in str(entry.get("msg", "")):
            waves[-1].active_after_s.append(round(_when_s(entry) - started_s, 3))
    return waves


async def run_once(ctx: Context, rate_per_s: float, run_dir: Path) -> list[Wave]:
    scenario = replace(SCENARIOS["paced-50ms"], commands=int(rate_per_s * 25), rate_per_s=rate_per_s)
    topics = Topics(f"bench-takeover-{uuid.uuid4().hex[:6]}", scenario.partitions)
    await create_topics(ctx.bootstrap, topics)
    sandbox = await start_sandbox(scenario.latency_ms, run_dir / "sandbox.log")
    env = design_env(ctx, topics, sandbox.base_url, "aiohttp", run_dir)
    first, second = replicas_of(
        "worker", design_argv("worker", "none", run_dir, ctx.worker_src), env, run_dir, 2
    ).processes
    load: asyncio.Task[int] | None = None
    try:
        first.spawn()
        await wait_until_owned(Replicas([first]), scenario.partitions, timeout_s=120.0)
        load = asyncio.create_task(
            produce(ctx.bootstrap, topics.commands, workload(scenario, ctx.seed), rate_per_s)
        )
        await asyncio.sleep(3.0)
        second.spawn()
        await asyncio.sleep(8.0)  # B joined: half the partitions each
        await second.stop()
        await asyncio.sleep(6.0)  # A took them all back
    finally:
        if load is not None:
            load.cancel()
        await asyncio.gather(first.stop(), second.stop(), return_exceptions=True)
        await sandbox.stop()
    return activation_waves((run_dir / f"{first.name}.log").read_bytes().splitlines())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.takeover", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=None, help="an existing broker (default: one started here)")
    parser.add_argument("--worker-src", type=Path, default=None, help="run this tree's worker package")
    parser.add_argument("--rate", type=float, default=200.0, help="commands/s produced meanwhile")
    parser.add_argument("--work-dir", type=Path, default=None)
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace, work_dir: Path) -> list[Wave]:
    with broker(argparse.Namespace(bootstrap=args.bootstrap, broker_pid=None), work_dir) as (bootstrap, _):
        ctx = Context(
            bootstrap, None, work_dir, 256, {}, "INFO", False, "none", 1, 0.5, None,
            args.worker_src.resolve() if args.worker_src else None,
        )  # fmt: skip
        waves = await run_once(ctx, args.rate, work_dir)
    for label, wave in zip(("start", "B joined", "B left"), waves, strict=False):
        print(f"{label}: {wave.line()}")
    print(f"logs in {work_dir}")
    return waves


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work_dir: Path = args.work_dir or Path(tempfile.mkdtemp(prefix="ecash-takeover-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    waves = asyncio.run(main_async(args, work_dir))
    return 0 if len(waves) >= 3 and all(w.active_after_s for w in waves) else 1


if __name__ == "__main__":
    sys.exit(main())
