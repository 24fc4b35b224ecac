"""Ownership against the real broker and the sandbox: a worker that stalls past its session, or restarts.

Each test runs real ``ecash-worker run`` processes on one group and freezes one with SIGSTOP (a GC or VM
pause) at a moment when it holds committed intents, lets the group move its partitions, resumes it, and
checks with the sandbox's ledger: no trace number executed twice, every result agrees with the ledger, and
a ``read_committed`` reader sees exactly one result record per command. docs/design.md, "Ownership".
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.harness import (
    WorkerProcess,
    command,
    create_topics,
    eventually,
    fast_settings,
    produce,
    wait_results,
)
from tests.integration.test_pipeline import assert_exactly_once
from worker.sandbox.server import serve_sandbox
from worker.sandbox.state import SandboxConfig

pytestmark = pytest.mark.kafka


def assert_one_record_each(results_by_trace: dict[str, int]) -> None:
    twice = {trace: n for trace, n in results_by_trace.items() if n != 1}
    assert not twice, f"a read_committed reader saw more than one result for {list(twice)[:5]}"


async def test_a_rate_limited_worker_frozen_past_its_session_sends_nothing_its_successor_answered(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The measured case: 80 charges over 4 partitions; the first worker waits in its rate limiter and is
    frozen for 30 s (session 6 s); the second takes its partitions and answers their commands; the first
    is resumed. Before ownership, 23 of 80 were reported ``failed`` while their money moved."""
    config = SandboxConfig(auto_create_wallets=True, default_balance=Decimal("10000000"), base_latency_ms=5)
    async with serve_sandbox(config) as sandbox:
        name = f"own{uuid.uuid4().hex[:8]}"
        slow = fast_settings(
            kafka_bootstrap, sandbox.base_url, name, tmp_path / "a", api_rate_limit_per_s=2.0
        )
        fast = fast_settings(kafka_bootstrap, sandbox.base_url, name, tmp_path / "b")
        await create_topics(slow)
        first = WorkerProcess(slow, tmp_path / "first.log", name="first")
        second = WorkerProcess(fast, tmp_path / "second.log", name="second")
        commands = [command(f"F{i}", f"0815{i:09d}", 10) for i in range(80)]
        traces = {c["trace_number"] for c in commands}
        await first.start()
        try:
            await produce(slow, commands)
            await eventually(lambda: len(sandbox.state.ledger.executions) >= 4, timeout_s=60)
            await second.start()  # joins: the group splits the partitions between the two
            await asyncio.sleep(8)
            first.freeze()
            frozen_at = time.monotonic()
            await asyncio.sleep(30)
            first.thaw()
            thawed_after_s = time.monotonic() - frozen_at
            results = await wait_results(fast, traces, timeout_s=120)
            # what the first worker does after it wakes (its drain) is part of the test
            await asyncio.sleep(5)
            results = await wait_results(fast, traces, timeout_s=30)
        finally:
            await first.terminate()
            await second.terminate()
    assert thawed_after_s >= 30
    assert_exactly_once(results, sandbox.state.ledger, traces)
    assert_one_record_each(results.records_per_trace())
    assert all(e["outcome"] in ("succeeded", "failed") for e in results.events)


async def test_a_restarted_worker_with_static_membership_takes_its_partitions_back_at_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Scenario 5: with the default 30 s session a crash-looping worker stalled its partitions for 30 s
    per crash. With a stable ECASH_KAFKA_GROUP_INSTANCE_ID the restarted process is the same member: no
    rebalance, no wait; its new producers fence the dead incarnation's."""
    config = SandboxConfig(auto_create_wallets=True, default_balance=Decimal("10000000"), base_latency_ms=5)
    async with serve_sandbox(config) as sandbox:
        settings = fast_settings(
            kafka_bootstrap,
            sandbox.base_url,
            f"st{uuid.uuid4().hex[:8]}",
            tmp_path / "state",
            kafka_session_timeout_s=30.0,
            kafka_rebalance_timeout_s=60.0,
            kafka_group_instance_id="worker-0",
        )
        await create_topics(settings)
        worker = WorkerProcess(settings, tmp_path / "worker.log")
        batches = [[command(f"S{b}x{i}", f"0816{i:09d}", 5) for i in range(50)] for b in range(4)]
        traces: set[str] = set()
        answered_after_restart_s: list[float] = []
        try:
            for batch in batches:
                await worker.start()
                await produce(settings, batch)
                traces |= {c["trace_number"] for c in batch}
                restarted = time.monotonic()
                await wait_results(settings, traces, timeout_s=60)
                answered_after_restart_s.append(time.monotonic() - restarted)
                await worker.kill()  # kill -9: no LeaveGroup, the member stays in the group
            await worker.start()
            results = await wait_results(settings, traces, timeout_s=60)
        finally:
            await worker.terminate()
    # Three restarts after a kill -9, each answered well inside one 30 s session timeout
    assert max(answered_after_restart_s[1:]) < 20, answered_after_restart_s
    assert_exactly_once(results, sandbox.state.ledger, traces)
    assert_one_record_each(results.records_per_trace())
