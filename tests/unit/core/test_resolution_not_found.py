"""When "not found" is believed, and what each policy does with it."""

from __future__ import annotations

import pytest

from tests.unit.core.drive import AMBIGUOUS, NOT_FOUND, NOT_SENT, OTHER, PROCESSED, drive, now_s, scripted
from worker.clock import FakeClock
from worker.core.resolution import (
    Conclude,
    InquireAt,
    ResolutionPolicy,
    ResolutionState,
    StatusObservation,
    TransportClass,
    apply_answer,
    observe,
)

POLICY = ResolutionPolicy()  # grace 15 s, schedule 5/10/20/40/60, deadline 900 s, 2 confirmations, fail


def test_two_consecutive_not_found_after_the_grace_fail_the_command() -> None:
    clock = FakeClock()
    run = drive(POLICY, ResolutionState.start(now_s(clock)), clock, scripted(NOT_FOUND, NOT_FOUND))
    assert run.inquiry_offsets_s == [15, 20]
    assert run.conclusion.outcome == "failed"
    assert run.conclusion.response_code == "PAYMENT_NOT_FOUND"
    assert run.conclusion.reason.startswith(
        "confirmed not executed: 2 consecutive not-found answers (PAYMENT_NOT_FOUND) over 5 s, "
        "the first 15 s after the outcome became unknown"
    )


def test_one_not_found_is_not_enough() -> None:
    start_s = now_s(FakeClock())
    state, decision = apply_answer(POLICY, ResolutionState.start(start_s), NOT_FOUND, start_s + 15)
    assert decision == InquireAt(start_s + 20)
    assert (state.consecutive_not_found, state.first_not_found_at_s) == (1, start_s + 15)


def test_one_not_found_is_enough_when_configured() -> None:
    clock = FakeClock()
    policy = ResolutionPolicy(not_found_confirmations=1)
    run = drive(policy, ResolutionState.start(now_s(clock)), clock, scripted(NOT_FOUND))
    assert (run.inquiry_offsets_s, run.conclusion.outcome) == ([15], "failed")


def test_not_found_before_the_grace_counts_as_nothing() -> None:
    start_s = now_s(FakeClock())
    state = ResolutionState.start(start_s)
    state, decision = apply_answer(POLICY, state, NOT_FOUND, start_s + 3)  # someone asked too early
    assert state.consecutive_not_found == 0
    assert decision == InquireAt(start_s + 15)  # the next inquiry still waits for the grace
    state, decision = apply_answer(POLICY, state, NOT_FOUND, start_s + 15)
    assert state.consecutive_not_found == 1
    assert isinstance(decision, InquireAt)
    _, decision = apply_answer(POLICY, state, NOT_FOUND, start_s + 25)
    assert isinstance(decision, Conclude)
    assert decision.outcome == "failed"


@pytest.mark.parametrize("interruption", [OTHER, NOT_SENT, AMBIGUOUS], ids=["other", "not_sent", "ambiguous"])
def test_any_other_answer_in_between_restarts_the_count(interruption: StatusObservation) -> None:
    clock = FakeClock()
    answers = scripted(NOT_FOUND, interruption, NOT_FOUND, NOT_FOUND)
    run = drive(POLICY, ResolutionState.start(now_s(clock)), clock, answers)
    assert run.inquiry_offsets_s == [15, 20, 30, 50]
    assert run.conclusion.outcome == "failed"
    assert "the first 30 s after" in run.conclusion.reason


def test_processed_after_not_found_wins() -> None:
    clock = FakeClock()
    run = drive(POLICY, ResolutionState.start(now_s(clock)), clock, scripted(NOT_FOUND, PROCESSED))
    assert run.conclusion.outcome == "succeeded"


def test_resubmit_policy_resubmits_up_to_the_limit_then_fails() -> None:
    policy = ResolutionPolicy(not_found_policy="resubmit", resubmit_max=1)
    clock = FakeClock()
    first = drive(policy, ResolutionState.start(now_s(clock)), clock, scripted(NOT_FOUND, NOT_FOUND))
    assert first.conclusion.outcome == "resubmit"
    assert "resubmitting (1 of 1)" in first.conclusion.reason

    clock.advance(1)  # the resubmitted Charge was ambiguous again: a new round starts now
    second_round = first.state.resubmitted(now_s(clock))
    assert (second_round.resubmits, second_round.inquiries, second_round.consecutive_not_found) == (1, 0, 0)
    assert second_round.history == first.state.history
    second = drive(policy, second_round, clock, scripted(NOT_FOUND, NOT_FOUND))
    assert second.inquiry_offsets_s == [15, 20]  # the grace counts from the new ambiguity
    assert second.conclusion.outcome == "failed"
    assert "resubmit limit (1) reached" in second.conclusion.reason


def test_resubmit_policy_with_no_resubmits_allowed_fails() -> None:
    policy = ResolutionPolicy(not_found_policy="resubmit", resubmit_max=0)
    clock = FakeClock()
    run = drive(policy, ResolutionState.start(now_s(clock)), clock, scripted(NOT_FOUND, NOT_FOUND))
    assert run.conclusion.outcome == "failed"


def test_a_resubmit_decision_is_repeated_after_a_restart_until_acted_on() -> None:
    policy = ResolutionPolicy(not_found_policy="resubmit", resubmit_max=2)
    clock = FakeClock()
    run = drive(policy, ResolutionState.start(now_s(clock)), clock, scripted(NOT_FOUND, NOT_FOUND))
    resumed = ResolutionState.from_dict(run.state.to_dict())
    _, again = apply_answer(policy, resumed, OTHER, now_s(clock) + 100)
    assert again == run.conclusion


@pytest.mark.parametrize(
    ("code", "transport_class", "expected"),
    [
        ("PROCESSED", None, StatusObservation("processed", "PROCESSED")),
        (" processed ", None, StatusObservation("processed", "PROCESSED")),
        ("PAYMENT_NOT_FOUND", None, StatusObservation("not_found", "PAYMENT_NOT_FOUND")),
        ("NO_TRANSACTION", None, StatusObservation("not_found", "NO_TRANSACTION")),
        ("GENERAL_ERROR", None, StatusObservation("other", "GENERAL_ERROR")),
        ("FAILED", None, StatusObservation("other", "FAILED")),
        ("SOMETHING_NEW", None, StatusObservation("other", "SOMETHING_NEW")),
        (None, "not_sent", StatusObservation("not_sent", None)),
        (None, "ambiguous", StatusObservation("ambiguous", None)),
        (None, "read_timeout", StatusObservation("ambiguous", None)),
        (None, None, StatusObservation("ambiguous", None)),
        ("", None, StatusObservation("ambiguous", None)),
    ],
)
def test_observe_classifies_status_answers(
    code: str | None, transport_class: TransportClass | None, expected: StatusObservation
) -> None:
    assert observe(code, transport_class, POLICY) == expected  # "read_timeout": untyped callers too


def test_observe_uses_the_configured_not_found_codes() -> None:
    policy = ResolutionPolicy(not_found_codes=frozenset({"TRX_UNKNOWN"}))
    assert observe("TRX_UNKNOWN", None, policy).kind == "not_found"
    assert observe("PAYMENT_NOT_FOUND", None, policy).kind == "other"
