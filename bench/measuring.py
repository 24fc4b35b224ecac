"""One run: fresh topics, a sandbox, the design started and watched until every result is in, then its
figures, and for the worker the time its journal restore takes on a restart."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.figures import (
    RunFigures,
    api_mean_ms,
    collect_timestamps,
    fill_resources,
    fill_timing,
    scrape,
    summed,
    write_means,
)
from bench.processes import Replicas, design_argv, design_env, replicas_of, start_sandbox
from bench.reporting import summary_line
from bench.sampling import END_POLL_S, Watch, wait_for_quiet, watch_until
from bench.scenarios import WORKER_DESIGNS, Context, Scenario, workload
from bench.topics import EndOffsets, Topics, create_topics, produce, read_topic
from ecash_dev.stack import SandboxProcess, WorkerProcess, free_port
from worker.settings import SANDBOX_API_IDENTITY


async def run_one(ctx: Context, scenario: Scenario, design: str, transport: str) -> RunFigures:
    label = f"{scenario.name}-{design}-{transport}"
    run_dir = Path(tempfile.mkdtemp(prefix=label + "-", dir=ctx.work_dir))
    topics = Topics(f"bench-{label}-{uuid.uuid4().hex[:6]}", scenario.partitions)
    figures = RunFigures(
        scenario.name, design, transport, scenario.commands, scenario.latency_ms, ctx.max_in_flight
    )
    if scenario.latency_ms > 0:
        figures.littles_law_bound_per_s = ctx.max_in_flight * ctx.replicas / (scenario.latency_ms / 1000)
    figures.profiled = ctx.profile if design != "baseline" else "none"
    figures.replicas = ctx.replicas if design in WORKER_DESIGNS else 1
    figures.rate_per_s = scenario.rate_per_s
    print(f"[{label}] topics {topics.prefix}, logs in {run_dir}", file=sys.stderr, flush=True)
    if ctx.quiet_below_cores is not None:  # before the pre-load: the wait would count as backlog time
        figures.waited_for_quiet_s = await wait_for_quiet(ctx, [ctx.broker_pid])
    await create_topics(ctx.bootstrap, topics)
    if scenario.rate_per_s is None:
        loaded_at = time.monotonic()
        await produce(ctx.bootstrap, topics.commands, workload(scenario, ctx.seed))
        took_s = time.monotonic() - loaded_at
        print(f"[{label}] pre-loaded {scenario.commands} in {took_s:.1f} s", file=sys.stderr, flush=True)
    sandbox = await start_sandbox(scenario.latency_ms, run_dir / "sandbox.log")
    env = design_env(ctx, topics, sandbox.base_url, transport, run_dir)
    argv = design_argv(design, figures.profiled, run_dir, ctx.worker_src)
    processes = replicas_of(design, argv, env, run_dir, figures.replicas)
    try:
        watch, spawned = await drive(ctx, scenario, topics, figures, processes, sandbox)
    finally:
        await processes.stop()
        await sandbox.stop()
    stamps = await collect_timestamps(ctx.bootstrap, topics, design)
    fill_timing(figures, stamps, spawned)
    fill_resources(figures, watch, stamps)
    figures.complete = figures.complete and figures.results_distinct == scenario.commands
    if design == "worker" and ctx.restore:
        plain = design_argv(design, "none", run_dir, ctx.worker_src)  # the tree under test, unprofiled
        figures.restore = await restore_figures(env, plain, run_dir, topics.partitions, scenario.latency_ms)
    (run_dir / "figures.json").write_bytes(orjson.dumps(asdict(figures), option=orjson.OPT_INDENT_2))
    print(f"[{label}] {summary_line(figures)}", file=sys.stderr, flush=True)
    return figures


async def wait_until_owned(processes: Replicas, partitions: int, *, timeout_s: float) -> float | None:
    """Seconds until the replicas own every partition between them, each restored (None: not in time)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s and processes.running:
        scraped = [await scrape(process.env) for process in processes.processes]
        owned = [summed(values, "ecash_assigned_partitions") for values in scraped]
        restored = [summed(values, "ecash_journal_restore_duration_seconds_count") for values in scraped]
        if sum(owned) >= partitions and all(r >= o for o, r in zip(owned, restored, strict=True)):
            return round(time.monotonic() - started, 2)
        await asyncio.sleep(0.1)
    return None


async def drive(
    ctx: Context,
    scenario: Scenario,
    topics: Topics,
    figures: RunFigures,
    processes: Replicas,
    sandbox: SandboxProcess,
) -> tuple[Watch, float]:
    """Start the design, feed it (paced scenarios), watch until every result is in; then its own figures."""
    spawned = time.time()
    processes.spawn()
    producer = None
    if scenario.rate_per_s is not None:
        # A steady load starts once the design can take it: the commands of its start-up (imports, the
        # group join, the journal restore) would otherwise wait seconds and fill the latency's tail.
        if figures.design in WORKER_DESIGNS:
            figures.ready_after_s = await wait_until_owned(processes, topics.partitions, timeout_s=120.0)
        commands = workload(scenario, ctx.seed)
        producer = asyncio.create_task(produce(ctx.bootstrap, topics.commands, commands, scenario.rate_per_s))
    timeout_s = ctx.timeout_s or max(600.0, scenario.commands / 20)
    async with EndOffsets(ctx.bootstrap, topics.results, topics.partitions) as ends:
        # End offsets count the transactions' commit markers too: once they pass the number of commands,
        # count the committed records (read_committed: a transaction still open is not counted yet), and
        # keep sampling until they are all there.
        deadline = time.monotonic() + timeout_s
        watch, figures.complete = await watch_until(
            ctx, processes, sandbox, ends, scenario.commands, timeout_s
        )
        while figures.complete:
            committed = await read_topic(ctx.bootstrap, topics.results, topics.partitions, lambda _r: None)
            if committed >= scenario.commands:
                break
            if time.monotonic() > deadline:
                figures.complete = False
                break
            await asyncio.sleep(min(ctx.sample_interval_s, END_POLL_S))
            more, figures.complete = await watch_until(ctx, processes, sandbox, ends, 0, 1.0)  # one sample
            watch.samples.extend(more.samples)
    if producer is not None:
        await producer
    if figures.design in WORKER_DESIGNS:
        values = await scrape(processes.processes[0].env)
        figures.api_call_mean_ms = api_mean_ms(values)
        figures.writes = write_means(values)
    peak = processes.kib("VmHWM")
    figures.peak_rss_mib = None if peak is None else round(peak / 1024, 1)
    for code in await processes.stop():
        if code not in (0, None):
            figures.notes.append(f"{figures.design} exited with {code}")
    return watch, spawned


async def measure_restore(
    env: dict[str, str], argv: list[str], state_dir: Path, log_path: Path, partitions: int
) -> dict[str, Any]:
    """Start the worker (``argv``: the tree under test, ``--worker-src``) over the same topics; time its
    journal restore (from its own metric) and readiness."""
    env = {**env, "ECASH_STATE_DIR": str(state_dir), "ECASH_METRICS_PORT": str(free_port())}
    child = WorkerProcess(dict(SANDBOX_API_IDENTITY), log_path, name="restore")  # env, argv replaced below
    child.env = env
    child.argv = argv
    started = time.monotonic()
    await child.start()
    ready_s: float | None = None
    values: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(trust_env=False) as http:
            ready_url = f"http://127.0.0.1:{env['ECASH_METRICS_PORT']}/readyz"
            while time.monotonic() - started < 600 and child.running:
                values = await scrape(env)
                restored = summed(values, "ecash_journal_restore_duration_seconds_count")
                with contextlib.suppress(httpx.HTTPError):
                    if ready_s is None and (await http.get(ready_url, timeout=2.0)).status_code == 200:
                        ready_s = time.monotonic() - started
                if restored >= partitions and ready_s is not None:
                    break
                await asyncio.sleep(0.1)
    finally:
        await child.terminate(60.0)
    return {
        "restore_s": round(summed(values, "ecash_journal_restore_duration_seconds_sum"), 3),
        "partitions": int(summed(values, "ecash_journal_restore_duration_seconds_count")),
        "records": int(summed(values, "ecash_journal_records_restored_total")),
        "start_to_ready_s": None if ready_s is None else round(ready_s, 2),
    }


async def restore_figures(
    env: dict[str, str], argv: list[str], run_dir: Path, partitions: int, latency_ms: float
) -> dict[str, Any]:
    """Cold: an empty state directory (the whole journal is replayed from the topic). Warm: the same
    directory again at once, its checkpoint where the cold restore ended: nothing to replay. (Not the
    run's own directory: its checkpoint is where the run's worker restored, at its start, since none is
    written at a drain (docs/design.md), so it would replay the whole run.)"""
    sandbox = await start_sandbox(latency_ms, run_dir / "sandbox-restore.log")
    try:
        env = {**env, "ECASH_API_BASE_URL": sandbox.base_url}
        state = run_dir / "state-restore"
        cold = await measure_restore(env, argv, state, run_dir / "restore-cold.log", partitions)
        warm = await measure_restore(env, argv, state, run_dir / "restore-warm.log", partitions)
    finally:
        await sandbox.stop()
    return {"warm": warm, "cold": cold}
