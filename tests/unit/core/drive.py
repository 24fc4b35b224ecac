"""Runs a resolution the way the pipeline will: sleep until the decision's time, ask, apply the answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from worker.clock import FakeClock
from worker.core.resolution import (
    Conclude,
    InquireAt,
    ResolutionPolicy,
    ResolutionState,
    StatusObservation,
    apply_answer,
    next_step,
)

Answerer = Callable[[float], StatusObservation]  # seconds since the start -> the Status Inquiry's answer


def now_s(clock: FakeClock) -> float:
    return clock.now().timestamp()


@dataclass
class Run:
    state: ResolutionState
    conclusion: Conclude
    inquiry_offsets_s: list[float] = field(default_factory=list)  # relative to the first round's start


def drive(
    policy: ResolutionPolicy,
    state: ResolutionState,
    clock: FakeClock,
    answer: Answerer,
    *,
    pace_factor: float = 1.0,
    max_inquiries: int = 500,
) -> Run:
    origin_s = state.started_at_s
    offsets: list[float] = []
    decision = next_step(policy, state, now_s(clock), pace_factor=pace_factor)
    while isinstance(decision, InquireAt):
        assert len(offsets) < max_inquiries, "the resolution never concluded"
        clock.advance(decision.delay_s(now_s(clock)))
        offset_s = now_s(clock) - origin_s
        offsets.append(offset_s)
        state, decision = apply_answer(policy, state, answer(offset_s), now_s(clock), pace_factor=pace_factor)
    return Run(state, decision, offsets)


def always(kind: str, code: str | None = None) -> Answerer:
    obs = StatusObservation(kind, code)  # type: ignore[arg-type]
    return lambda _offset_s: obs


def scripted(*answers: StatusObservation, then: StatusObservation | None = None) -> Answerer:
    """The answers in order, then ``then`` forever (default: GENERAL_ERROR, which settles nothing)."""
    queue = list(answers)
    rest = then or StatusObservation("other", "GENERAL_ERROR")
    return lambda _offset_s: queue.pop(0) if queue else rest


NOT_FOUND = StatusObservation("not_found", "PAYMENT_NOT_FOUND")
OTHER = StatusObservation("other", "GENERAL_ERROR")
PROCESSED = StatusObservation("processed", "PROCESSED")
NOT_SENT = StatusObservation("not_sent", None)
AMBIGUOUS = StatusObservation("ambiguous", None)
