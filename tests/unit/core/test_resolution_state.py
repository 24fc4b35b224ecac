"""The journaled form of a resolution, and the sentence a human reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.core.drive import NOT_FOUND, OTHER, now_s
from worker.clock import FakeClock
from worker.core.resolution import ResolutionPolicy, ResolutionState, apply_answer, describe


def _state_after(*answers_at: tuple[float, Any]) -> ResolutionState:
    start_s = now_s(FakeClock())
    state = ResolutionState.start(start_s)
    for offset_s, obs in answers_at:
        state, _ = apply_answer(ResolutionPolicy(), state, obs, start_s + offset_s)
    return state


def test_state_round_trips_through_json() -> None:
    state = _state_after((15, OTHER), (20, NOT_FOUND))
    text = json.dumps(state.to_dict())
    assert ResolutionState.from_dict(json.loads(text)) == state


@pytest.mark.parametrize(
    "corrupt",
    [
        {"v": 2},
        {"started_at_s": "yesterday"},
        {"inquiries": -1},
        {"inquiries": True},
        {"last_answer": "maybe"},
        {"history": "none"},
        {"history": [[1.0, "other"]]},
        {"history": [[1.0, "weird", None]]},
        {"history": [[1.0, "other", 5]]},
    ],
)
def test_corrupt_journal_state_is_refused(corrupt: dict[str, Any]) -> None:
    data = _state_after((15, OTHER)).to_dict() | corrupt
    with pytest.raises(ValueError, match="resolution state"):
        ResolutionState.from_dict(data)


def test_describe_before_any_answer() -> None:
    assert describe(_state_after()) == (
        "Outcome unknown since 2026-01-01T00:00:00Z; no Status Inquiry answered yet."
    )


def test_describe_tells_the_story_so_far() -> None:
    state = _state_after((15, OTHER), (20, NOT_FOUND))
    assert describe(state) == (
        "Outcome unknown since 2026-01-01T00:00:00Z; 2 Status Inquiry answer(s) "
        "(not_found 1 [PAYMENT_NOT_FOUND], other 1 [GENERAL_ERROR]), the last at 2026-01-01T00:00:20Z: "
        "not_found (PAYMENT_NOT_FOUND); 1 consecutive believed not-found answer(s)."
    )


def test_describe_mentions_resubmits() -> None:
    state = ResolutionState.start(now_s(FakeClock()), resubmits=1)
    assert describe(state).endswith("; resubmitted 1 time(s).")
