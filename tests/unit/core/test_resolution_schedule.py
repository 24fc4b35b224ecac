"""When Status Inquiries happen: the default schedule, the deadline, pacing, and resuming after a restart."""

from __future__ import annotations

import json

import pytest

from tests.unit.core.drive import NOT_FOUND, OTHER, PROCESSED, always, drive, now_s, scripted
from worker.clock import FakeClock
from worker.core.resolution import (
    Conclude,
    InquireAt,
    ResolutionPolicy,
    ResolutionState,
    apply_answer,
    next_step,
)

DEFAULT_TIMES_S = [15, 20, 30, 50, 90, *range(150, 900, 60), 900]


def default_policy() -> ResolutionPolicy:
    return ResolutionPolicy()  # the settings' defaults (tests/unit/test_policies.py)


def test_default_schedule_inquires_at_exact_times_then_gives_up_at_the_deadline() -> None:
    clock = FakeClock()
    run = drive(
        default_policy(), ResolutionState.start(now_s(clock)), clock, always("other", "GENERAL_ERROR")
    )
    assert run.inquiry_offsets_s == DEFAULT_TIMES_S
    assert run.conclusion.outcome == "unresolved"
    assert "within 900 s" in run.conclusion.reason
    assert "19 Status Inquiry answer(s) (other 19 [GENERAL_ERROR])" in run.conclusion.reason


def test_unresolved_reason_summarizes_the_mixed_answers_seen() -> None:
    clock = FakeClock()
    answers = scripted(NOT_FOUND, OTHER, NOT_FOUND, then=OTHER)
    run = drive(default_policy(), ResolutionState.start(now_s(clock)), clock, answers)
    assert run.conclusion.outcome == "unresolved"
    assert "other 17 [GENERAL_ERROR], not_found 2 [PAYMENT_NOT_FOUND]" in run.conclusion.reason
    assert "the last at 2026-01-01T00:15:00Z: other (GENERAL_ERROR)" in run.conclusion.reason


def test_processed_concludes_succeeded_at_that_inquiry() -> None:
    clock = FakeClock()
    run = drive(
        default_policy(), ResolutionState.start(now_s(clock)), clock, scripted(OTHER, OTHER, PROCESSED)
    )
    assert run.inquiry_offsets_s == [15, 20, 30]
    assert run.conclusion == Conclude(
        "succeeded",
        "Status Inquiry answered PROCESSED, corroborated by Transaction History (3 inquiries)",
        "PROCESSED",
    )


def test_a_long_step_is_clamped_to_one_last_inquiry_at_the_deadline() -> None:
    policy = ResolutionPolicy(first_inquiry_after_s=15, schedule_s=(500,), deadline_s=900)
    clock = FakeClock()
    run = drive(policy, ResolutionState.start(now_s(clock)), clock, always("other", "GENERAL_ERROR"))
    assert run.inquiry_offsets_s == [15, 515, 900]
    assert run.conclusion.outcome == "unresolved"


def test_a_slow_answer_delays_the_next_inquiry_from_when_it_arrived() -> None:
    policy = default_policy()
    start_s = now_s(FakeClock())
    state = ResolutionState.start(start_s)
    state, decision = apply_answer(policy, state, OTHER, start_s + 25)  # asked at 15, answered at 25
    assert decision == InquireAt(start_s + 30)


def test_breaker_pace_factor_stretches_the_delays_but_not_past_the_deadline() -> None:
    clock = FakeClock()
    policy = default_policy()
    run = drive(policy, ResolutionState.start(now_s(clock)), clock, always("other", "X"), pace_factor=4.0)
    assert run.inquiry_offsets_s == [15, 35, 75, 155, 315, 555, 795, 900]


def test_resume_after_restart_inquires_now_when_overdue() -> None:
    policy = default_policy()
    clock = FakeClock()
    start_s = now_s(clock)
    state = ResolutionState.start(start_s)
    for at_s in (15, 20, 30):
        state, _ = apply_answer(policy, state, OTHER, start_s + at_s)
    journaled = json.loads(json.dumps(state.to_dict()))  # the journal record, as another machine reads it

    resumed = ResolutionState.from_dict(journaled)
    assert resumed == state
    assert next_step(policy, resumed, start_s + 200) == InquireAt(start_s + 200)  # overdue since 50: now
    assert next_step(policy, resumed, start_s + 40) == InquireAt(start_s + 50)  # not due yet: as planned


def test_resume_after_the_deadline_asks_once_more_and_honours_the_answer() -> None:
    policy = default_policy()
    start_s = now_s(FakeClock())
    state = ResolutionState.start(start_s)
    state, _ = apply_answer(policy, state, OTHER, start_s + 15)
    late_s = start_s + 3600  # the worker was down for an hour

    assert next_step(policy, state, late_s) == InquireAt(late_s)
    _, settled = apply_answer(policy, state, PROCESSED, late_s)
    assert isinstance(settled, Conclude)
    assert settled.outcome == "succeeded"
    _, given_up = apply_answer(policy, state, OTHER, late_s)
    assert isinstance(given_up, Conclude)
    assert given_up.outcome == "unresolved"


def test_resume_before_any_inquiry_waits_for_the_grace() -> None:
    policy = default_policy()
    start_s = now_s(FakeClock())
    state = ResolutionState.start(start_s)
    assert next_step(policy, state, start_s + 2) == InquireAt(start_s + 15)
    assert next_step(policy, state, start_s + 60) == InquireAt(start_s + 60)


def test_answer_after_a_conclusion_changes_nothing() -> None:
    policy = default_policy()
    start_s = now_s(FakeClock())
    state, first = apply_answer(policy, ResolutionState.start(start_s), PROCESSED, start_s + 15)
    again, second = apply_answer(policy, state, NOT_FOUND, start_s + 20)
    assert again == state
    assert second == first


@pytest.mark.parametrize(
    "kwargs",
    [
        {"schedule_s": ()},
        {"schedule_s": (5.0, 0.0)},
        {"deadline_s": 0},
        {"first_inquiry_after_s": -1},
        {"not_found_confirmations": 0},
        {"not_found_policy": "retry"},
        {"resubmit_max": -1},
    ],
)
def test_policy_refuses_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        ResolutionPolicy(**kwargs)  # type: ignore[arg-type]


def test_pace_factor_must_be_positive() -> None:
    with pytest.raises(ValueError, match="pace_factor"):
        next_step(default_policy(), ResolutionState.start(0.0), 0.0, pace_factor=0)
