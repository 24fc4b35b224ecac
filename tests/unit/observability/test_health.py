"""The probe server over a real loopback socket (port 0): what Kubernetes and Prometheus see."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest

from worker.clock import FakeClock
from worker.contracts import CommandType, Outcome, ResolvedBy
from worker.events import FatalConfiguration, PipelineSnapshot, ResultPublished
from worker.observability.health import HealthServer, serve_health
from worker.observability.metrics import Metrics
from worker.settings import Settings, load_settings

from .samples import MSISDN, TRACE, busy_snapshot

STUCK_LOOP_S = 30.0


@dataclass
class World:
    clock: FakeClock
    snap: PipelineSnapshot
    metrics: Metrics
    server: HealthServer
    client: httpx.AsyncClient

    def now_s(self) -> float:
        return self.clock.now().timestamp()

    def set(self, **changes: Any) -> None:
        self.snap = replace(self.snap, **changes)

    async def get(self, path: str, **headers: str) -> httpx.Response:
        return await self.client.get(f"http://127.0.0.1:{self.server.port}{path}", headers=headers)


def loopback_settings(port: int = 0) -> Settings:
    return load_settings(metrics_host="127.0.0.1", metrics_port=port, stuck_loop_s=STUCK_LOOP_S)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = FakeClock()
    metrics = Metrics()
    holder: list[World] = []
    server = await serve_health(loopback_settings(), metrics, lambda: holder[0].snap, clock=clock)
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as client:
        w = World(clock, busy_snapshot(clock.now().timestamp()), metrics, server, client)
        holder.append(w)
        yield w
    await server.stop()


async def test_port_zero_binds_a_real_port(world: World) -> None:
    assert world.server.port > 0
    assert world.server.running


async def test_metrics_are_served_in_the_prometheus_text_format(world: World) -> None:
    world.metrics.hook(
        ResultPublished(
            TRACE, MSISDN, CommandType.CHARGE, Outcome.SUCCEEDED, ResolvedBy.RESPONSE, "PROCESSED", 1, 0.2
        )
    )
    response = await world.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    body = response.text
    assert 'ecash_results_total{outcome="succeeded",resolved_by="response",type="charge"} 1.0' in body
    assert "process_resident_memory_bytes" in body
    assert MSISDN not in body


async def test_metrics_speak_openmetrics_when_asked(world: World) -> None:
    response = await world.get("/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


async def test_live_while_the_loop_beats(world: World) -> None:
    world.clock.advance(STUCK_LOOP_S - 1)
    response = await world.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_not_live_when_the_heartbeat_is_older_than_stuck_loop_s(world: World) -> None:
    world.clock.advance(STUCK_LOOP_S + 5)
    response = await world.get("/healthz")
    assert response.status_code == 503
    assert "event loop stuck" in response.json()["failing"][0]
    world.set(loop_heartbeat_unix_s=world.now_s())
    assert (await world.get("/healthz")).status_code == 200


async def test_before_the_first_heartbeat_the_server_start_gives_a_grace_period(world: World) -> None:
    world.set(loop_heartbeat_unix_s=0.0)
    assert (await world.get("/healthz")).status_code == 200
    world.clock.advance(STUCK_LOOP_S + 1)
    assert (await world.get("/healthz")).status_code == 503


async def test_ready_when_live_joined_and_no_fatal(world: World) -> None:
    response = await world.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert body["checks"]["assigned_partitions"] == [0, 3]


async def test_a_joined_worker_without_partitions_is_ready(world: World) -> None:
    world.set(assigned_partitions=(), lag_messages={}, lag_seconds={})
    assert (await world.get("/readyz")).status_code == 200


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"consuming": False}, "consumer not running or not joined to its group"),
        (
            {"fatal": "login refused: INVALID_CREDENTIAL"},
            "fatal configuration error: login refused: INVALID_CREDENTIAL",
        ),
    ],
)
async def test_not_ready_says_which_condition_fails(
    world: World, changes: dict[str, Any], reason: str
) -> None:
    world.set(**changes)
    response = await world.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == [reason]
    assert response.headers["content-type"] == "application/json"


async def test_every_failing_condition_is_listed(world: World) -> None:
    world.set(consuming=False, fatal="login refused: BLOCKED")
    world.clock.advance(STUCK_LOOP_S + 1)
    failing = (await world.get("/readyz")).json()["failing"]
    assert len(failing) == 3
    assert failing[0].startswith("event loop stuck")


@pytest.mark.parametrize(
    "bank_down",
    [
        {"logged_in": False},
        {"breaker_state": "open"},
        {"breaker_state": "half_open"},
        {"logged_in": False, "breaker_state": "open"},
    ],
)
async def test_a_bank_outage_leaves_a_pod_that_can_own_partitions_ready(
    world: World, bank_down: dict[str, Any]
) -> None:
    """Every pod sees the same outage: NotReady would block rollouts and drains and help nobody."""
    world.set(**bank_down)
    response = await world.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["failing"] == []
    assert {key: body["checks"][key] for key in bank_down} == bank_down  # still shown, for humans


async def test_a_pod_started_during_an_outage_is_ready_once_it_joins_its_group(world: World) -> None:
    world.set(consuming=False, logged_in=False, breaker_state="open", assigned_partitions=())
    assert (await world.get("/readyz")).status_code == 503
    world.set(consuming=True, assigned_partitions=(1, 2))  # the first login still fails
    assert (await world.get("/readyz")).status_code == 200


async def test_a_cleared_fatal_error_makes_the_worker_ready_again(world: World) -> None:
    world.metrics.hook(FatalConfiguration("APIKey refused"))
    world.set(fatal="APIKey refused")
    assert (await world.get("/readyz")).json()["failing"] == ["fatal configuration error: APIKey refused"]
    world.set(fatal=None)  # credentials fixed: the pipeline clears it, no event says so
    assert (await world.get("/readyz")).status_code == 200


async def test_a_broken_snapshot_source_answers_503_with_the_reason() -> None:
    def broken() -> PipelineSnapshot:
        raise KeyError("partition 7")

    server = await serve_health(loopback_settings(), Metrics(), broken, clock=FakeClock())
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            for path in ("/readyz", "/healthz"):
                response = await client.get(f"http://127.0.0.1:{server.port}{path}")
                assert response.status_code == 503
                assert response.json()["failing"] == ["snapshot unavailable: KeyError"]
            assert (await client.get(f"http://127.0.0.1:{server.port}/metrics")).status_code == 200
    finally:
        await server.stop()


async def test_unknown_paths_are_404(world: World) -> None:
    assert (await world.get("/admin")).status_code == 404


async def test_stop_closes_the_port() -> None:
    server = await serve_health(loopback_settings(), Metrics(), PipelineSnapshot, clock=FakeClock())
    port = server.port
    await server.stop()
    assert not server.running
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


async def test_a_busy_port_fails_at_start_not_later() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(OSError, match="in use"):
            await serve_health(loopback_settings(taken.getsockname()[1]), Metrics(), PipelineSnapshot)
