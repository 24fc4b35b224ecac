"""The circuit breaker: when new money movements stop, how they resume, and how resolution slows down."""

from __future__ import annotations

import pytest

from worker.clock import FakeClock
from worker.core.breaker import BreakerPolicy, BreakerState, CircuitBreaker

POLICY = BreakerPolicy(window_s=30, min_calls=20, failure_ratio=0.5, open_s=15, max_open_s=120)


def make(policy: BreakerPolicy = POLICY) -> tuple[CircuitBreaker, FakeClock, list[tuple[BreakerState, str]]]:
    clock = FakeClock()
    changes: list[tuple[BreakerState, str]] = []
    breaker = CircuitBreaker(policy, clock, on_change=lambda state, reason: changes.append((state, reason)))
    return breaker, clock, changes


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """Read through a call, so that mypy does not pin the property to an earlier assertion."""
    return breaker.state


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(POLICY.min_calls):
        breaker.record_failure("not_sent")
    assert state_of(breaker) is BreakerState.OPEN


def test_closed_allows_work_and_does_not_trip_below_min_calls() -> None:
    breaker, _, changes = make()
    for _ in range(19):
        breaker.record_failure("ambiguous")
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.allow_new_work()
    assert changes == []


def test_opens_when_the_failure_ratio_is_reached_with_enough_calls() -> None:
    breaker, _, changes = make()
    for _ in range(10):
        breaker.record_success()
    for _ in range(6):
        breaker.record_failure("not_sent")
    for _ in range(4):
        breaker.record_failure("ambiguous")
    assert state_of(breaker) is BreakerState.OPEN
    assert not breaker.allow_new_work()
    assert changes == [
        (BreakerState.OPEN, "10 of 20 calls in the last 30 s failed (ambiguous 4, not_sent 6); open for 15 s")
    ]


def test_declines_count_as_health_so_a_busy_healthy_api_stays_closed() -> None:
    breaker, _, _ = make()
    for _ in range(11):
        breaker.record_success()  # e.g. NOT_ENOUGH_CREDITS: the API answered
    for _ in range(9):
        breaker.record_failure("ambiguous")
    assert state_of(breaker) is BreakerState.CLOSED


def test_old_failures_slide_out_of_the_window() -> None:
    breaker, clock, _ = make()
    for _ in range(15):
        breaker.record_failure("not_sent")
    clock.advance(31)
    for _ in range(15):
        breaker.record_failure("not_sent")
    assert state_of(breaker) is BreakerState.CLOSED


def test_consecutive_login_failures_open_regardless_of_min_calls() -> None:
    breaker, _, changes = make()
    breaker.record_failure("login")
    breaker.record_failure("login")
    breaker.record_success()  # a working call in between: the count starts again
    breaker.record_failure("login")
    breaker.record_failure("login")
    assert state_of(breaker) is BreakerState.CLOSED
    breaker.record_failure("login")
    assert state_of(breaker) is BreakerState.OPEN
    assert changes[-1] == (BreakerState.OPEN, "3 consecutive login failures; open for 15 s")


def test_after_open_s_exactly_one_probe_is_allowed() -> None:
    breaker, clock, changes = make()
    trip(breaker)
    clock.advance(14.9)
    assert not breaker.allow_new_work()
    clock.advance(0.1)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert changes[-1] == (BreakerState.HALF_OPEN, "open for 15 s: one probe allowed")
    assert [breaker.allow_new_work() for _ in range(5)] == [True, False, False, False, False]


def test_a_successful_probe_closes_the_breaker() -> None:
    breaker, clock, changes = make()
    trip(breaker)
    clock.advance(15)
    assert breaker.allow_new_work()
    breaker.record_success()
    assert state_of(breaker) is BreakerState.CLOSED
    assert changes[-1] == (BreakerState.CLOSED, "probe succeeded")
    assert all(breaker.allow_new_work() for _ in range(3))
    for _ in range(19):  # the failures from before the open were forgotten
        breaker.record_failure("not_sent")
    assert state_of(breaker) is BreakerState.CLOSED


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_cap() -> None:
    breaker, clock, changes = make()
    trip(breaker)
    open_periods_s = []
    for _ in range(5):
        clock.advance(breaker.open_for_s)
        assert breaker.allow_new_work()
        breaker.record_failure("ambiguous")
        assert state_of(breaker) is BreakerState.OPEN
        open_periods_s.append(breaker.open_for_s)
    assert open_periods_s == [30, 60, 120, 120, 120]
    assert changes[-1] == (BreakerState.OPEN, "probe failed (ambiguous); open for 120 s")
    clock.advance(119)
    assert not breaker.allow_new_work()


def test_a_close_resets_the_open_time() -> None:
    breaker, clock, _ = make()
    trip(breaker)
    clock.advance(15)
    breaker.record_failure("not_sent")  # reopen for 30
    clock.advance(30)
    breaker.record_success()
    trip(breaker)
    assert breaker.open_for_s == 15


def test_a_probe_that_never_reports_frees_the_slot_after_the_probe_timeout() -> None:
    breaker, clock, _ = make(BreakerPolicy(probe_timeout_s=30))
    trip(breaker)
    clock.advance(15)
    assert breaker.allow_new_work()
    clock.advance(29)
    assert not breaker.allow_new_work()
    clock.advance(1)
    assert breaker.allow_new_work()


def test_answers_while_open_change_nothing() -> None:
    breaker, clock, _ = make()
    trip(breaker)
    breaker.record_success()
    breaker.record_failure("not_sent")
    clock.advance(14)
    assert state_of(breaker) is BreakerState.OPEN


def test_resolution_slows_down_while_not_closed() -> None:
    breaker, clock, _ = make()
    assert breaker.resolution_pace_factor == 1.0
    trip(breaker)
    assert breaker.resolution_pace_factor == 4.0
    clock.advance(15)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert breaker.resolution_pace_factor == 4.0
    breaker.record_success()
    assert breaker.resolution_pace_factor == 1.0


def test_a_failing_listener_never_breaks_the_breaker() -> None:
    def explode(state: BreakerState, reason: str) -> None:
        raise RuntimeError("metrics down")

    breaker = CircuitBreaker(POLICY, FakeClock(), on_change=explode)
    trip(breaker)


def test_any_failure_label_counts_and_shows_in_the_reason() -> None:
    breaker, _, changes = make()
    for _ in range(20):
        breaker.record_failure("GENERAL_ERROR")
    assert changes[-1] == (
        BreakerState.OPEN,
        "20 of 20 calls in the last 30 s failed (GENERAL_ERROR 20); open for 15 s",
    )
    with pytest.raises(ValueError, match="kind"):
        breaker.record_failure("")


@pytest.mark.parametrize(
    "kwargs",
    [{"window_s": 0}, {"min_calls": 0}, {"failure_ratio": 0}, {"failure_ratio": 1.5}, {"max_open_s": 1}],
)
def test_policy_refuses_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        BreakerPolicy(**kwargs)  # type: ignore[arg-type]


def test_a_hard_outage_trips_at_once_even_after_thousands_of_successes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerPolicy(window_s=30, min_calls=20, consecutive_failures_to_open=20), clock)
    for _ in range(6000):
        breaker.record_success()
    for _ in range(19):
        breaker.record_failure("not_sent")
    assert state_of(breaker) is BreakerState.CLOSED
    breaker.record_failure("not_sent")
    assert state_of(breaker) is BreakerState.OPEN


def test_an_answer_between_failures_resets_the_run() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerPolicy(min_calls=1000, consecutive_failures_to_open=5), clock)
    for _ in range(100):
        for _ in range(4):
            breaker.record_failure("ambiguous")
        breaker.record_success()
    assert state_of(breaker) is BreakerState.CLOSED


def test_the_probe_slot_is_claimed_only_while_half_open_and_only_once() -> None:
    breaker, clock, _ = make()
    assert not breaker.claim_probe()  # closed: nothing to probe
    trip(breaker)
    assert not breaker.claim_probe()  # open: too early
    clock.advance(15)
    assert [breaker.claim_probe() for _ in range(3)] == [True, False, False]
    assert not breaker.allow_new_work()  # a buffered command does not probe a second time
    clock.advance(POLICY.probe_timeout_s)
    assert breaker.claim_probe()  # the first probe never reported: another may go


def test_probe_due_in_s_counts_down_the_open_time_and_the_silent_probe() -> None:
    breaker, clock, _ = make()
    assert breaker.probe_due_in_s() is None
    trip(breaker)
    clock.advance(10)
    assert breaker.probe_due_in_s() == 5
    clock.advance(5)
    assert breaker.probe_due_in_s() == 0
    assert breaker.claim_probe()
    clock.advance(12)
    assert breaker.probe_due_in_s() == POLICY.probe_timeout_s - 12
    breaker.record_failure("not_sent")  # the probe failed: open for twice as long
    assert breaker.probe_due_in_s() == 30
    clock.advance(30)
    breaker.record_success()
    assert breaker.probe_due_in_s() is None
