"""The shared token bucket, on a fake clock: no real waiting."""

from __future__ import annotations

import asyncio

import pytest

from worker.clock import FakeClock
from worker.core.ratelimit import RateLimiter


async def _acquire_all(limiter: RateLimiter, clock: FakeClock, count: int) -> list[float]:
    granted_s: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        granted_s.append(clock.monotonic_s())

    await asyncio.gather(*(one() for _ in range(count)))
    return granted_s


async def test_100_concurrent_acquires_at_10_per_s_take_about_10_s_and_never_exceed_the_rate() -> None:
    clock = FakeClock()
    start_s = clock.monotonic_s()
    limiter = RateLimiter(rate_per_s=10, burst=1, clock=clock)

    granted_s = await _acquire_all(limiter, clock, 100)

    assert clock.monotonic_s() - start_s == pytest.approx(9.9)
    for t in granted_s:  # every 1 s window (just under, for float rounding) holds at most 10 grants
        assert sum(1 for g in granted_s if t <= g < t + 1 - 1e-6) <= 10


async def test_burst_is_granted_at_once_then_the_rate_applies() -> None:
    clock = FakeClock()
    start_s = clock.monotonic_s()
    limiter = RateLimiter(rate_per_s=2, burst=5, clock=clock)
    granted_s = await _acquire_all(limiter, clock, 7)
    assert [g - start_s for g in granted_s] == pytest.approx([0, 0, 0, 0, 0, 0.5, 1.0])


async def test_waiters_are_served_in_arrival_order() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=5, burst=1, clock=clock)
    order: list[int] = []

    async def one(index: int) -> None:
        await limiter.acquire()
        order.append(index)

    await asyncio.gather(*(one(i) for i in range(20)))
    assert order == list(range(20))


async def test_zero_rate_means_unlimited() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=0, burst=1, clock=clock)
    for _ in range(1000):
        await limiter.acquire()
    assert clock.slept_s == []


async def test_an_idle_bucket_refills_only_up_to_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=10, burst=3, clock=clock)
    clock.advance(3600)
    await _acquire_all(limiter, clock, 4)
    assert clock.slept_s == pytest.approx([0.1])


async def test_a_cancelled_waiter_leaves_its_token_for_the_next() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=1, burst=1, clock=clock)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)  # it takes the lock and starts sleeping for its token
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert waiter.cancelled()

    await limiter.acquire()  # the time the cancelled waiter slept produced a token; nobody took it
    assert clock.slept_s == [1.0]


@pytest.mark.parametrize(("rate_per_s", "burst"), [(-1.0, 1), (10.0, 0)])
def test_limiter_refuses_nonsense(rate_per_s: float, burst: int) -> None:
    with pytest.raises(ValueError, match="must"):
        RateLimiter(rate_per_s, burst, FakeClock())
