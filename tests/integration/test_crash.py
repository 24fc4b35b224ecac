"""kill -9 in the middle of thousands of commands, some mid-Charge: nothing moves twice, nothing is lost."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from ecash_dev.sandbox.server import serve_sandbox
from ecash_dev.sandbox.state import SandboxConfig
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

pytestmark = pytest.mark.kafka


async def test_kill_9_mid_stream_and_restart_moves_each_trace_number_at_most_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = SandboxConfig(auto_create_wallets=True, default_balance=Decimal("100000"), base_latency_ms=30)
    async with serve_sandbox(config) as sandbox:
        settings = fast_settings(
            kafka_bootstrap,
            sandbox.base_url,
            f"k{uuid.uuid4().hex[:8]}",
            tmp_path / "state",
            max_in_flight=64,
        )
        await create_topics(settings)
        commands = [
            command(f"K{i}", f"0814{i % 500:09d}", 7, "charge" if i % 2 else "credit") for i in range(5000)
        ]
        traces = {c["trace_number"] for c in commands}
        await produce(settings, commands)
        worker = WorkerProcess(settings, tmp_path / "worker.log")
        kills = 0
        for threshold in (800, 2500):
            await worker.start()
            await eventually(lambda t=threshold: len(sandbox.state.ledger.executions) >= t, timeout_s=120)
            await worker.kill()
            kills += 1
        await worker.start()
        try:
            results = await wait_results(settings, traces, timeout_s=240)
        finally:
            assert await worker.terminate() == 0
    assert kills == 2
    # The kills landed mid-call: the restarted worker found intents without outcomes and asked Status.
    assert sandbox.state.stats.calls["status"] > 0
    assert_exactly_once(results, sandbox.state.ledger, traces)
