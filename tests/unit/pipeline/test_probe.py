"""The breaker recovers by itself: with no command buffered, a Login probe closes it once the API is back.

The real client, breaker, gate and event hook, wired as in ``worker/service.py``; the API is the scripted
in-memory fake (``httpx.MockTransport``) and time is a fake clock, so a 45 s outage runs in milliseconds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx
import pytest

from tests.unit.ecash.fake_api import FakeApi, make_settings
from worker.clock import FakeClock
from worker.core.breaker import BreakerState, CircuitBreaker
from worker.ecash import wire
from worker.ecash.client import EcashClient
from worker.events import BreakerProbed, FanOut, ProbeResult, Recorder
from worker.pipeline.gate import Gate
from worker.pipeline.probe import BreakerProber, probe_wait_s
from worker.policies import breaker_policy
from worker.service import breaker_hook

OPEN_S = 15.0
DOWN = httpx.ConnectError("connection refused")


@dataclass
class World:
    api: FakeApi
    clock: FakeClock
    breaker: CircuitBreaker
    gate: Gate
    client: EcashClient
    prober: BreakerProber
    events: Recorder
    fatal: list[str] = field(default_factory=list)

    def state(self) -> BreakerState:
        return self.breaker.state

    def money_calls(self) -> int:
        return self.api.count(wire.Operation.CHARGE) + self.api.count(wire.Operation.CREDIT)

    def probes(self) -> list[str]:
        return [e.result for e in self.events.events if isinstance(e, BreakerProbed)]

    async def outage_trips_the_breaker(self) -> None:
        """Three logins refused by the network: the breaker opens, and no command is buffered anywhere."""
        self.api.queue(wire.Operation.LOGIN, DOWN, DOWN, DOWN)
        for _ in range(3):
            with pytest.raises(Exception, match="login"):
                await self.client.login()
        assert self.state() is BreakerState.OPEN


@pytest.fixture
async def world() -> World:
    settings = make_settings(breaker_open_s=OPEN_S)
    clock = FakeClock()
    api = FakeApi()
    breaker = CircuitBreaker(breaker_policy(settings), clock)
    gate = Gate(breaker, clock)
    events = Recorder()
    sink = FanOut([breaker_hook(breaker), events.emit])
    client = EcashClient(settings, transport=api.transport(), sink=sink, clock=clock)
    fatal: list[str] = []

    def on_fatal(reason: str) -> None:
        fatal.append(reason)
        gate.set_fatal(reason)

    prober = BreakerProber(breaker, gate, client.login, clock, sink, on_fatal)
    return World(api, clock, breaker, gate, client, prober, events, fatal)


async def test_an_open_breaker_with_nothing_buffered_closes_when_the_api_recovers(world: World) -> None:
    await world.outage_trips_the_breaker()
    world.clock.advance(OPEN_S)
    world.api.queue(wire.Operation.LOGIN, DOWN)  # still down at the first probe
    assert await world.prober.step() is ProbeResult.REOPENED
    assert world.state() is BreakerState.OPEN
    assert world.breaker.open_for_s == 2 * OPEN_S
    world.clock.advance(2 * OPEN_S)  # the API is back (the fake answers by default)
    assert await world.prober.step() is ProbeResult.CLOSED
    assert world.state() is BreakerState.CLOSED
    assert world.client.logged_in
    assert world.gate.open_for_new_work  # the consumer may fetch again
    assert world.money_calls() == 0
    assert world.probes() == ["reopened", "closed"]


async def test_left_alone_the_prober_closes_the_breaker_on_its_own(world: World) -> None:
    changes: list[tuple[float, BreakerState]] = []
    world.breaker.on_change = lambda state, _: changes.append((world.clock.monotonic_s(), state))
    await world.outage_trips_the_breaker()
    world.api.queue(wire.Operation.LOGIN, DOWN)  # the first probe fails; the API is back for the second
    task = asyncio.create_task(world.prober.run())
    try:
        for _ in range(10_000):
            if world.state() is BreakerState.CLOSED:
                break
            await asyncio.sleep(0)
        else:
            pytest.fail("the breaker never closed")
    finally:
        task.cancel()
    tripped_at_s = changes[0][0]
    timeline = [(round(at_s - tripped_at_s, 3), state.value) for at_s, state in changes]
    # 15 s open, a failed probe, 30 s open, a probe that closes it: no poll interval added on top.
    assert timeline == [(0, "open"), (15, "half_open"), (15, "open"), (45, "half_open"), (45, "closed")]
    assert world.api.count(wire.Operation.LOGIN) == 3 + 2
    assert world.money_calls() == 0


async def test_a_closed_or_still_open_breaker_is_never_probed(world: World) -> None:
    assert await world.prober.step() is None  # closed: a healthy API gets no extra calls
    await world.outage_trips_the_breaker()
    world.clock.advance(OPEN_S - 0.1)
    assert await world.prober.step() is None  # open: too early
    assert world.api.count(wire.Operation.LOGIN) == 3


async def test_a_buffered_command_that_took_the_probe_slot_is_not_doubled(world: World) -> None:
    await world.outage_trips_the_breaker()
    world.clock.advance(OPEN_S)
    assert world.breaker.allow_new_work()  # a command waiting at the gate is the probe
    assert await world.prober.step() is None
    assert world.api.count(wire.Operation.LOGIN) == 3


async def test_refused_credentials_stop_the_worker_as_a_configuration_error(world: World) -> None:
    await world.outage_trips_the_breaker()
    world.clock.advance(OPEN_S)
    world.api.queue(wire.Operation.LOGIN, {"status": "INVALID_CREDENTIAL"})
    assert await world.prober.step() is ProbeResult.FATAL
    assert world.fatal == ["login refused: INVALID_CREDENTIAL (Wrong Credentials)"]
    world.clock.advance(10 * OPEN_S)
    assert await world.prober.step() is None  # the fatal-error loop owns the logins from here
    assert world.api.count(wire.Operation.LOGIN) == 4


async def test_a_5xx_during_the_probe_reopens_and_the_next_one_closes(world: World) -> None:
    await world.outage_trips_the_breaker()
    world.clock.advance(OPEN_S)
    world.api.queue(wire.Operation.LOGIN, httpx.Response(503, text="<html>maintenance</html>"))
    assert await world.prober.step() is ProbeResult.REOPENED
    world.clock.advance(world.breaker.open_for_s)
    assert await world.prober.step() is ProbeResult.CLOSED


@pytest.mark.parametrize(
    ("due_in_s", "expected_s"),
    [(None, 1.0), (0.0, 0.01), (0.4, 0.4), (14.0, 1.0)],
)
def test_the_prober_sleeps_until_due_but_at_most_one_poll(due_in_s: float | None, expected_s: float) -> None:
    assert probe_wait_s(due_in_s, poll_s=1.0) == expected_s
