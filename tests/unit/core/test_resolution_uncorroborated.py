"""An uncorroborated PROCESSED settles nothing: the schedule goes on, the deadline hands it to a person.

And its journal form: an older worker (v1 vocabulary) still reads a newer record, a newer worker reads an
older one, and a journaled PROCESSED is never believed on resume.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.core.drive import AMBIGUOUS, NOT_FOUND, NOT_SENT, OTHER, PROCESSED, drive, now_s, scripted
from worker.clock import FakeClock
from worker.core.resolution import (
    JOURNAL_KINDS,
    Conclude,
    InquireAt,
    ResolutionPolicy,
    ResolutionState,
    StatusObservation,
    apply_answer,
    describe,
    next_step,
    uncorroborated,
)

EVIDENCE = (
    "Status Inquiry answered PROCESSED but the Transaction History of MSISDN 08131234567 does not show "
    "trace number T1 (0 entries read)"
)
UNCORROBORATED = uncorroborated(EVIDENCE)
# What a worker before corroboration accepts (worker/core/resolution.py before this change).
V1_KINDS = {"processed", "not_found", "other", "not_sent", "ambiguous"}


def test_uncorroborated_is_a_processed_code_with_its_evidence() -> None:
    assert StatusObservation("uncorroborated", "PROCESSED", EVIDENCE) == UNCORROBORATED
    assert JOURNAL_KINDS == V1_KINDS


def test_uncorroborated_answers_keep_the_schedule_and_end_unresolved_with_the_evidence() -> None:
    clock = FakeClock()
    run = drive(ResolutionPolicy(), ResolutionState.start(now_s(clock)), clock, scripted(then=UNCORROBORATED))
    clock2 = FakeClock()
    other = drive(ResolutionPolicy(), ResolutionState.start(now_s(clock2)), clock2, scripted(then=OTHER))
    assert run.inquiry_offsets_s == other.inquiry_offsets_s  # 15, 20, 30, 50, 90, ..., 900: 19 inquiries
    assert len(run.inquiry_offsets_s) == 19
    assert run.conclusion.outcome == "unresolved"
    assert run.conclusion.reason == (
        "no conclusion within 900 s: 19 Status Inquiry answer(s) (uncorroborated 19 [PROCESSED]); "
        f"the last at 2026-01-01T00:15:00Z: uncorroborated (PROCESSED); {EVIDENCE}"
    )


def test_the_evidence_stays_in_the_reason_when_later_answers_are_of_another_kind() -> None:
    clock = FakeClock()
    run = drive(
        ResolutionPolicy(),
        ResolutionState.start(now_s(clock)),
        clock,
        scripted(UNCORROBORATED, then=AMBIGUOUS),
    )
    assert run.conclusion.outcome == "unresolved"
    assert run.conclusion.reason.endswith(f"the last at 2026-01-01T00:15:00Z: ambiguous; {EVIDENCE}")
    assert describe(run.state).endswith(f"; {EVIDENCE}.")


def test_history_lagging_then_showing_it_concludes_succeeded_at_that_inquiry() -> None:
    clock = FakeClock()
    run = drive(
        ResolutionPolicy(),
        ResolutionState.start(now_s(clock)),
        clock,
        scripted(UNCORROBORATED, UNCORROBORATED, PROCESSED),
    )
    assert run.inquiry_offsets_s == [15, 20, 30]
    assert run.conclusion == Conclude(
        "succeeded",
        "Status Inquiry answered PROCESSED, corroborated by Transaction History (3 inquiries)",
        "PROCESSED",
    )


def test_after_an_uncorroborated_processed_not_found_answers_never_conclude_failed() -> None:
    clock = FakeClock()
    for policy in (ResolutionPolicy(), ResolutionPolicy(not_found_policy="resubmit")):
        run = drive(
            policy, ResolutionState.start(now_s(clock)), clock, scripted(UNCORROBORATED, then=NOT_FOUND)
        )
        assert run.conclusion.outcome == "unresolved"
        assert run.state.consecutive_not_found == 18


def test_an_uncorroborated_processed_breaks_a_not_found_streak() -> None:
    state = ResolutionState.start(0.0)
    state, _ = apply_answer(ResolutionPolicy(), state, NOT_FOUND, 15)
    state, decision = apply_answer(ResolutionPolicy(), state, UNCORROBORATED, 20)
    assert state.consecutive_not_found == 0
    assert state.first_not_found_at_s is None
    assert decision == InquireAt(30)


def test_a_resubmitted_round_starts_without_the_last_rounds_evidence() -> None:
    state, _ = apply_answer(ResolutionPolicy(), ResolutionState.start(0.0), UNCORROBORATED, 15)
    assert state.evidence == EVIDENCE
    assert state.resubmitted(100.0).evidence is None


# --- the journal form ------------------------------------------------------------------------------------


def _state(*answers: StatusObservation) -> ResolutionState:
    state = ResolutionState.start(1_767_225_600.0)
    for offset_s, obs in zip((15, 20, 30, 50, 90, 150), answers, strict=False):
        state, _ = apply_answer(ResolutionPolicy(), state, obs, state.started_at_s + offset_s)
    return state


def test_an_uncorroborated_processed_is_journaled_in_the_v1_vocabulary_with_its_evidence() -> None:
    data = _state(OTHER, UNCORROBORATED).to_dict()
    assert data == {
        "v": 1,
        "started_at_s": 1_767_225_600.0,
        "inquiries": 2,
        "consecutive_not_found": 0,
        "first_not_found_at_s": None,
        "resubmits": 0,
        "last_answer": "other",
        "history": [[1_767_225_615.0, "other", "GENERAL_ERROR"], [1_767_225_620.0, "other", "PROCESSED"]],
        "evidence": EVIDENCE,
    }


def test_it_reads_back_as_uncorroborated() -> None:
    state = _state(OTHER, UNCORROBORATED, AMBIGUOUS)
    back = ResolutionState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert back == state
    assert back.history[1][1] == "uncorroborated"


def test_an_older_workers_record_loads_unchanged() -> None:
    older: dict[str, Any] = {
        "v": 1,
        "started_at_s": 1_767_225_600.0,
        "inquiries": 2,
        "consecutive_not_found": 1,
        "first_not_found_at_s": 1_767_225_620.0,
        "resubmits": 0,
        "last_answer": "not_found",
        "history": [
            [1_767_225_615.0, "other", "GENERAL_ERROR"],
            [1_767_225_620.0, "not_found", "PAYMENT_NOT_FOUND"],
        ],
    }
    state = ResolutionState.from_dict(older)
    assert state == _state(OTHER, NOT_FOUND)
    assert state.evidence is None
    assert state.to_dict() == older


def test_what_an_older_worker_writes_back_still_reads_as_uncorroborated() -> None:
    """An older worker keeps the history as it is and drops the key it does not know (``evidence``)."""
    data = _state(UNCORROBORATED).to_dict()
    data.pop("evidence")
    back = ResolutionState.from_dict(data)
    assert back.last_answer == "uncorroborated"
    assert back.evidence is None
    assert isinstance(next_step(ResolutionPolicy(), back, back.started_at_s + 15), InquireAt)


def test_a_journaled_processed_is_never_believed_on_resume() -> None:
    data = _state(OTHER).to_dict()
    data["inquiries"] = 2
    data["last_answer"] = "processed"
    data["history"].append([1_767_225_620.0, "processed", "PROCESSED"])
    state = ResolutionState.from_dict(data)
    assert state.last_answer == "uncorroborated"
    assert state.history[-1] == (1_767_225_620.0, "uncorroborated", "PROCESSED")
    assert next_step(ResolutionPolicy(), state, 1_767_225_620.0) == InquireAt(1_767_225_630.0)


ANSWERS = st.sampled_from([NOT_FOUND, OTHER, NOT_SENT, AMBIGUOUS, UNCORROBORATED])


@given(st.lists(ANSWERS, max_size=30), st.sampled_from(["fail", "resubmit"]))
def test_without_a_corroborated_processed_nothing_concludes_succeeded(
    answers: list[StatusObservation], not_found_policy: str
) -> None:
    policy = ResolutionPolicy(not_found_policy=not_found_policy)  # type: ignore[arg-type]
    clock = FakeClock()
    run = drive(policy, ResolutionState.start(now_s(clock)), clock, scripted(*answers, then=UNCORROBORATED))
    assert run.conclusion.outcome != "succeeded"
    if any(obs is UNCORROBORATED for obs in answers[: len(run.inquiry_offsets_s)]) or not answers:
        assert run.conclusion.outcome == "unresolved"


@given(st.lists(ANSWERS, max_size=25))
def test_the_journal_form_round_trips_and_holds_only_v1_kinds(answers: list[StatusObservation]) -> None:
    state = ResolutionState.start(1_767_225_600.0)
    for index, obs in enumerate(answers):
        state, _ = apply_answer(
            ResolutionPolicy(deadline_s=10_000), state, obs, state.started_at_s + 15 + index
        )
    data = json.loads(json.dumps(state.to_dict()))
    assert data["v"] == 1
    assert {kind for _, kind, _ in data["history"]} <= V1_KINDS
    assert data["last_answer"] is None or data["last_answer"] in V1_KINDS
    assert ResolutionState.from_dict(data) == state
