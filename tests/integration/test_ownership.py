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

from ecash_dev.kafka import free_ports
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
from tests.kafka_fixtures import start_test_broker

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


class CuttableProxy:
    """A TCP proxy on loopback that can cut the link: bytes are dropped both ways (as a firewall drops
    packets), connections stay open; when the link heals, the dead connections are closed so clients
    reconnect (as they would after their requests time out)."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self.cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = port

    async def stop(self) -> None:
        self.heal()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def heal(self) -> None:
        self.cut = False
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            w.close()
            self._writers.discard(w)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self.cut:
                continue  # dropped on the floor
            writer.write(data)
            await writer.drain()


async def test_a_worker_cut_off_from_the_broker_but_not_the_api_sends_nothing_its_successor_answered(
    tmp_path: Path,
) -> None:
    """The worse measured case: the first worker reaches the API but not the broker for 30 s (a partial
    network partition; its broker connections go through a proxy whose link is cut). Before ownership it
    went on calling the API and 47 of 80 commands were reported ``failed`` while their money moved."""
    port, controller, proxied, proxy_port = free_ports(4)
    broker = start_test_broker(
        tmp_path / "kafka",
        properties={
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller},"
            f"PROXIED://127.0.0.1:{proxied}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},PROXIED://127.0.0.1:{proxy_port}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT",
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        },
        ports=(port, controller),
    )
    proxy = CuttableProxy(proxied)
    await proxy.start(proxy_port)
    config = SandboxConfig(auto_create_wallets=True, default_balance=Decimal("10000000"), base_latency_ms=250)
    try:
        async with serve_sandbox(config) as sandbox:
            name = f"cut{uuid.uuid4().hex[:8]}"
            direct = fast_settings(broker.bootstrap, sandbox.base_url, name, tmp_path / "b", max_in_flight=4)
            via_proxy = fast_settings(
                f"127.0.0.1:{proxy_port}", sandbox.base_url, name, tmp_path / "a", max_in_flight=4
            )
            await create_topics(direct)
            first = WorkerProcess(via_proxy, tmp_path / "first.log", name="first")
            second = WorkerProcess(direct, tmp_path / "second.log", name="second")
            commands = [command(f"C{i}", f"0817{i:09d}", 10) for i in range(80)]
            traces = {c["trace_number"] for c in commands}
            await first.start()
            await second.start()
            try:
                await asyncio.sleep(10)  # both joined: the partitions are split
                await produce(direct, commands)
                await eventually(lambda: len(sandbox.state.ledger.executions) >= 8, timeout_s=60)
                proxy.cut = True
                await asyncio.sleep(30)
                proxy.heal()
                results = await wait_results(direct, traces, timeout_s=120)
                await asyncio.sleep(5)
                results = await wait_results(direct, traces, timeout_s=30)
            finally:
                await first.terminate()
                await second.terminate()
            assert_exactly_once(results, sandbox.state.ledger, traces)
            assert_one_record_each(results.records_per_trace())
    finally:
        await proxy.stop()
        broker.stop()
