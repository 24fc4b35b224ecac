"""What an SRE sees on a running worker with real Kafka: metrics, probes, check, fatal errors, breaker."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from ecash_dev.kafka import free_ports
from ecash_dev.sandbox.faults import FaultKind, FaultRule
from ecash_dev.sandbox.server import RunningSandbox, serve_sandbox
from ecash_dev.sandbox.state import SandboxConfig, WalletSpec
from tests.integration.harness import (
    command,
    create_topics,
    eventually,
    fast_settings,
    produce,
    produce_at,
    running_worker,
    wait_results,
)
from worker.ecash.wire import Operation
from worker.observability.check import run_check
from worker.pipeline.key_rule import java_partition
from worker.service import Worker
from worker.settings import Settings

pytestmark = pytest.mark.kafka

RICH = "0815000000001"
POOR = "0815000000002"
CONFIG = SandboxConfig(
    wallets=[
        WalletSpec(msisdn=RICH, balance=Decimal("1000000")),
        WalletSpec(msisdn=POOR, balance=Decimal("10")),
    ],
    auto_create_wallets=True,
)


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with serve_sandbox(CONFIG) as running:
        yield running


def settings_for(bootstrap: str, base_url: str, tmp_path: Path, **overrides: object) -> Settings:
    return fast_settings(bootstrap, base_url, f"o{uuid.uuid4().hex[:8]}", tmp_path, **overrides)


async def get(worker: Worker, path: str) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as client:
        return await client.get(f"http://127.0.0.1:{worker.health_port}{path}")


def sample(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text exposition."""
    for line in metrics_text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels}")


async def started_with_health(settings: Settings) -> tuple[Worker, asyncio.Task[int]]:
    worker = Worker(settings, serve_health=True)
    task = asyncio.create_task(worker.run())
    await eventually(lambda: worker.health_port is not None, timeout_s=30)
    return worker, task


async def test_metrics_probes_and_check_on_a_running_worker(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    settings = settings_for(kafka_bootstrap, sandbox.base_url, tmp_path)
    await create_topics(settings)
    await produce(settings, [command("M1", RICH, 100), command("M2", POOR, 100), b"garbage"])
    worker, task = await started_with_health(settings)
    try:
        await wait_results(settings, {"M1", "M2"}, timeout_s=60)
        await eventually(lambda: worker.runner.snapshot().assigned_partitions != (), timeout_s=30)
        text = (await get(worker, "/metrics")).text
        assert sample(text, "ecash_results_total", type="charge", outcome="succeeded") == 1
        assert sample(text, "ecash_results_total", type="charge", outcome="declined") == 1
        assert sample(text, "ecash_api_calls_total", operation="charge", code="PROCESSED") == 1
        assert sample(text, "ecash_api_calls_total", operation="charge", code="NOT_ENOUGH_CREDITS") == 1
        assert sample(text, "ecash_dead_letters_total", reason="not_json") == 1
        assert sample(text, "ecash_commands_consumed_total") == 3
        assert sample(text, "ecash_logins_total", kind="login", result="ok") >= 1
        assert sample(text, "ecash_assigned_partitions") == settings.topic_partitions
        assert sample(text, "ecash_api_call_duration_seconds_count", operation="charge") == 2
        assert sample(text, "ecash_build_info") == 1
        assert 'msisdn="' not in text  # bounded labels: never an MSISDN or a trace number
        assert 'trace_number="' not in text
        assert RICH not in text
        assert '"M1"' not in text
        assert settings.api_key.get_secret_value() not in text
        await eventually(lambda: sample_sync(worker) == 0, timeout_s=10)
        assert (await get(worker, "/healthz")).status_code == 200
        ready = await get(worker, "/readyz")
        assert ready.status_code == 200, ready.text
        assert await asyncio.to_thread(run_check, settings, port=worker.health_port) == 0
        assert await asyncio.to_thread(run_check, settings, live=True, port=worker.health_port) == 0
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
    assert await asyncio.to_thread(run_check, settings, port=worker.health_port) == 1  # gone: not ready


def sample_sync(worker: Worker) -> int:
    return sum(worker.runner.snapshot().lag_messages.values())


async def test_bad_credentials_stop_consumption_loudly_and_burn_nothing(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    settings = settings_for(kafka_bootstrap, sandbox.base_url, tmp_path, api_credentials="wrong-credentials")
    await create_topics(settings)
    await produce(settings, [command(f"F{i}", RICH, 1) for i in range(20)])
    worker, task = await started_with_health(settings)
    try:
        await eventually(lambda: worker.gate.fatal is not None, timeout_s=30)
        await asyncio.sleep(2.0)  # give a buggy worker time to burn the backlog
        ready = await get(worker, "/readyz")
        assert ready.status_code == 503
        assert "INVALID_CREDENTIAL" in ready.text
        assert "wrong-credentials" not in ready.text
        text = (await get(worker, "/metrics")).text
        assert sample(text, "ecash_fatal_configuration") == 1
        assert await asyncio.to_thread(run_check, settings, port=worker.health_port) == 1
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
    assert sandbox.state.stats.calls["charge"] == 0
    assert sandbox.state.ledger.executions == []


async def test_an_api_outage_pauses_the_worker_instead_of_failing_commands(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    outage = AsyncExitStack()
    first = await outage.enter_async_context(serve_sandbox(CONFIG, port=port))
    settings = settings_for(
        kafka_bootstrap, first.base_url, tmp_path, breaker_min_calls=5, breaker_open_s=1.0, max_in_flight=8
    )
    await create_topics(settings)
    try:
        async with running_worker(settings) as worker:
            await produce(settings, [command("P0", RICH, 1)])
            await wait_results(settings, {"P0"}, timeout_s=60)
            await outage.aclose()  # the API goes away: connections are refused from now on
            await produce(
                settings, [command(f"P{i}", f"08150000{i:05d}", 1, "credit") for i in range(1, 101)]
            )
            await eventually(lambda: worker.breaker.state == "open", timeout_s=30)
            assert not worker.gate.open_for_new_work
            await asyncio.sleep(1.0)
            async with serve_sandbox(CONFIG, port=port) as second:
                results = await wait_results(settings, {f"P{i}" for i in range(101)}, timeout_s=120)
    finally:
        await outage.aclose()
    outcomes = {e["trace_number"]: e["outcome"] for e in results.events}
    assert set(outcomes.values()) == {"succeeded"}, "an outage must not turn into failed results"
    executed = [e.trace_number for e in second.state.ledger.executions]
    assert sorted(executed) == sorted(f"P{i}" for i in range(1, 101))


async def test_a_pod_started_during_a_bank_outage_is_ready_and_recovers_without_a_restart(
    kafka_bootstrap: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Readiness is "this pod can own partitions", not "the bank is up"; the bank's state is in metrics."""
    settings = settings_for(
        kafka_bootstrap, sandbox.base_url, tmp_path, breaker_min_calls=2, breaker_open_s=1.0
    )
    await create_topics(settings)
    async with httpx.AsyncClient(trust_env=False) as admin:
        (await admin.put(f"{sandbox.admin_url}/faults", json=["*:http_5xx_before_commit"])).raise_for_status()
    worker, task = await started_with_health(settings)
    try:
        await eventually(lambda: worker.runner.snapshot().consuming, timeout_s=60)
        ready = await get(worker, "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["logged_in"] is False
        assert ready.json()["checks"]["breaker_state"] in {"open", "half_open"}
        out = io.StringIO()
        assert await asyncio.to_thread(run_check, settings, port=worker.health_port, out=out) == 0
        assert "logged_in=False" in out.getvalue()
        await eventually(lambda: worker.breaker.open_for_s > 1.0, timeout_s=30)  # a probe failed
        text = (await get(worker, "/metrics")).text
        assert sample(text, "ecash_breaker_state", state="closed") == 0  # the alert's input: bank down
        assert sample(text, "ecash_breaker_probes_total", result="reopened") >= 1
        assert sample(text, "ecash_logged_in") == 0
        async with httpx.AsyncClient(trust_env=False) as admin:
            (await admin.delete(f"{sandbox.admin_url}/faults")).raise_for_status()
        await eventually(lambda: worker.breaker.state == "closed", timeout_s=30)
        text = (await get(worker, "/metrics")).text
        assert sample(text, "ecash_breaker_probes_total", result="closed") == 1
        assert sample(text, "ecash_logged_in") == 1
        assert (await get(worker, "/readyz")).status_code == 200
        assert not task.done()
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
    assert sandbox.state.ledger.executions == []  # probes never move money


async def test_a_review_decision_that_needs_no_api_call_is_applied_during_an_outage(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The bank is down and the breaker open; an operator settles an unresolved item as ``succeeded``
    (no API call needed): the worker applies it during the outage, not after."""
    (port,) = free_ports(1)
    outage = AsyncExitStack()
    first = await outage.enter_async_context(serve_sandbox(CONFIG, port=port))
    settings = settings_for(
        kafka_bootstrap,
        first.base_url,
        tmp_path,
        breaker_min_calls=5,
        breaker_open_s=30.0,
        max_in_flight=8,
        resolution_deadline_s=3.0,
    )
    await create_topics(settings)
    first.sandbox.faults.replace(
        [
            FaultRule(operation=Operation.CHARGE, kind=FaultKind.HANG_AFTER_COMMIT, trace_numbers=("U1",)),
            FaultRule(
                operation=Operation.STATUS, kind=FaultKind.HTTP_5XX_BEFORE_COMMIT, trace_numbers=("U1",)
            ),
        ]
    )
    try:
        async with running_worker(settings) as worker:
            await produce(settings, [command("U1", RICH, 300)])
            results = await wait_results(settings, {"U1"}, timeout_s=60)
            assert results.outcome_of("U1") == "unresolved"
            await outage.aclose()  # the API goes away
            # other wallets' commands: they trip the breaker and then wait at the gate, holding every slot
            await produce(settings, [command(f"Q{i}", f"08160000{i:05d}", 1, "credit") for i in range(20)])
            await eventually(lambda: worker.breaker.state == "open", timeout_s=30)
            decision = {
                "type": "review_decision",
                "trace_number": "U1",
                "msisdn": RICH,
                "outcome": "succeeded",
                "decided_by": "sre-on-call",
                "reason": "the bank's report shows the charge",
            }
            # to the decisions topic, at the partition of U1's command (what `review resolve` does)
            partition = java_partition(RICH.encode(), settings.topic_partitions)
            await produce_at(settings, decision, partition=partition, topic=settings.review_decisions_topic)
            settled = await wait_results(settings, {"U1"}, timeout_s=30)
            for _ in range(150):
                if len(settled.distinct()) >= 2:
                    break
                await asyncio.sleep(0.2)
                settled = await wait_results(settings, {"U1"}, timeout_s=30)
            assert worker.breaker.state != "closed", "applied during the outage, not after it"
    finally:
        await outage.aclose()
    manual = [e for e in settled.distinct().values() if e["resolved_by"] == "manual"]
    assert [e["outcome"] for e in manual] == ["succeeded"]
