"""What to do about a Charge/Credit whose outcome is unknown: ask Status Inquiry on a schedule, never re-send.

A read timeout, a reset after sending, a 5xx, a non-JSON body, GENERAL_ERROR or an unknown code means the
money may have moved. That is not a failure, it is an unknown, and only the API can settle it.

Pure functions over frozen data. Times are wall-clock epoch seconds (``clock.now().timestamp()``), not
monotonic: the state is journaled in Kafka and resumed after a restart, possibly on another machine.
The rules, with their reasons, are in ``docs/resolution.md``.

A ``PROCESSED`` settles the command only once it is corroborated (``worker.core.corroboration``: the echoed
trace number and the MSISDN's Transaction History). The caller does that check and passes an uncorroborated
``PROCESSED`` in as ``uncorroborated(evidence)``: it settles nothing, and the schedule goes on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ANSWER_KINDS",
    "JOURNAL_KINDS",
    "PROCESSED",
    "STATE_VERSION",
    "AnswerKind",
    "Conclude",
    "ConcludeOutcome",
    "HistoryEntry",
    "InquireAt",
    "JournalEntry",
    "NotFoundPolicyName",
    "ResolutionMove",
    "ResolutionPolicy",
    "ResolutionRecord",
    "ResolutionState",
    "StatusObservation",
    "TransportClass",
    "apply_answer",
    "deadline_at_s",
    "describe",
    "next_step",
    "observe",
    "uncorroborated",
]

AnswerKind = Literal["processed", "uncorroborated", "not_found", "other", "not_sent", "ambiguous"]
# The transport's verdict when no usable answer came back (worker.ecash.codes.CallClass has both).
TransportClass = Literal["not_sent", "ambiguous"]
ConcludeOutcome = Literal["succeeded", "failed", "unresolved", "resubmit"]
NotFoundPolicyName = Literal["fail", "resubmit"]
HistoryEntry = tuple[float, AnswerKind, str | None]  # (at_s, answer kind, response code)

ANSWER_KINDS: frozenset[str] = frozenset(get_args(AnswerKind))
# The kinds the journal format (v1) has always held: an older worker refuses any other. An uncorroborated
# PROCESSED is journaled as ("other", "PROCESSED"), a pair nothing else writes (``observe`` calls every
# PROCESSED "processed"), so an older worker reads it as an answer that settles nothing.
JOURNAL_KINDS: frozenset[str] = frozenset({"processed", "not_found", "other", "not_sent", "ambiguous"})
PROCESSED = "PROCESSED"
STATE_VERSION = 1


@dataclass(frozen=True)
class ResolutionPolicy:
    """The schedule and the rules, as data (built from the settings by ``worker.policies``)."""

    first_inquiry_after_s: float = 15.0
    schedule_s: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0, 60.0)
    deadline_s: float = 900.0
    not_found_codes: frozenset[str] = frozenset({"PAYMENT_NOT_FOUND", "NO_TRANSACTION"})
    not_found_confirmations: int = 2
    not_found_policy: NotFoundPolicyName = "fail"
    resubmit_max: int = 1

    def __post_init__(self) -> None:
        if self.first_inquiry_after_s < 0:
            raise ValueError("first_inquiry_after_s must be >= 0")
        if not self.schedule_s or any(step <= 0 for step in self.schedule_s):
            raise ValueError("schedule_s must be a non-empty tuple of positive seconds")
        if self.deadline_s <= 0:
            raise ValueError("deadline_s must be > 0")
        if self.not_found_confirmations < 1:
            raise ValueError("not_found_confirmations must be >= 1")
        if self.not_found_policy not in get_args(NotFoundPolicyName):
            raise ValueError("not_found_policy must be 'fail' or 'resubmit'")
        if self.resubmit_max < 0:
            raise ValueError("resubmit_max must be >= 0")

    def delay_after_s(self, inquiries: int) -> float:
        """The wait after the ``inquiries``-th inquiry (1-based); the last step repeats forever."""
        return self.schedule_s[min(max(inquiries, 1), len(self.schedule_s)) - 1]


@dataclass(frozen=True)
class StatusObservation:
    """One Status Inquiry answer, classified."""

    kind: AnswerKind
    code: str | None = None
    evidence: str | None = None  # why a PROCESSED was not believed (kind "uncorroborated")


def uncorroborated(evidence: str) -> StatusObservation:
    """A ``PROCESSED`` whose echo or Transaction History did not corroborate it: it settles nothing."""
    return StatusObservation("uncorroborated", PROCESSED, evidence)


def observe(
    code: str | None, transport_class: TransportClass | None, policy: ResolutionPolicy
) -> StatusObservation:
    """Classify a Status Inquiry answer.

    ``transport_class`` is set when no usable answer came back: ``"not_sent"`` (the inquiry never left) or
    ``"ambiguous"`` (timeout, reset, 5xx, non-JSON); anything else is treated as ambiguous too.
    A missing code with no transport class (an answer without a status) is ambiguous too.
    A ``PROCESSED`` comes back ``processed``: corroborate it before applying it (module docstring).
    """
    if transport_class is not None:
        kind: AnswerKind = "not_sent" if transport_class == "not_sent" else "ambiguous"
        return StatusObservation(kind, code)
    if code is None or not code.strip():
        return StatusObservation("ambiguous", None)
    normalized = code.strip().upper()
    if normalized == PROCESSED:
        return StatusObservation("processed", normalized)
    if normalized in policy.not_found_codes:
        return StatusObservation("not_found", normalized)
    return StatusObservation("other", normalized)


@dataclass(frozen=True)
class ResolutionState:
    """Where the resolution of one command stands: journaled as ``to_dict()``, resumed with ``from_dict``."""

    started_at_s: float
    inquiries: int = 0
    consecutive_not_found: int = 0
    first_not_found_at_s: float | None = None
    resubmits: int = 0
    last_answer: AnswerKind | None = None
    history: tuple[HistoryEntry, ...] = field(default=())
    evidence: str | None = None  # this round's latest reason not to believe a PROCESSED

    @classmethod
    def start(cls, now_s: float, *, resubmits: int = 0) -> ResolutionState:
        """The ambiguity was detected at ``now_s``: the grace and the deadline count from here.

        ``resubmits``: how many times this command was already resubmitted (journal it; it bounds
        the resubmit policy across rounds).
        """
        return cls(started_at_s=now_s, resubmits=resubmits)

    def resubmitted(self, now_s: float) -> ResolutionState:
        """The round after a resubmit whose call was ambiguous again at ``now_s``: resubmits + 1,
        a fresh grace and deadline, the history kept so the whole story stays visible."""
        return replace(ResolutionState.start(now_s, resubmits=self.resubmits + 1), history=self.history)

    @property
    def last_inquiry_at_s(self) -> float | None:
        return self.history[-1][0] if self.inquiries and self.history else None

    def to_record(self) -> ResolutionRecord:
        """The journaled form, in the v1 format an older worker reads too (``JOURNAL_KINDS``)."""
        return ResolutionRecord(
            v=STATE_VERSION,
            started_at_s=self.started_at_s,
            inquiries=self.inquiries,
            consecutive_not_found=self.consecutive_not_found,
            first_not_found_at_s=self.first_not_found_at_s,
            resubmits=self.resubmits,
            last_answer=_journal_kind(self.last_answer) if self.last_answer else None,
            history=[(at_s, _journal_kind(kind), code) for at_s, kind, code in self.history],
            evidence=self.evidence,
        )

    @classmethod
    def from_record(cls, record: ResolutionRecord) -> ResolutionState:
        """Inverse of ``to_record``; raises ``ValueError`` on a version it does not read.

        A journaled PROCESSED is never believed on resume: ``("other", "PROCESSED")`` and ``processed``
        (which only an older worker could have left unconcluded) both read back as ``uncorroborated``, so
        the resumed resolution asks again and corroborates."""
        if record.v != STATE_VERSION:
            raise ValueError(f"unsupported resolution state version: {record.v!r}")
        history = tuple(_history_entry(at_s, kind, code) for at_s, kind, code in record.history)
        last_answer = record.last_answer
        if last_answer == "processed" or (
            last_answer == "other" and record.inquiries and history and history[-1][1] == "uncorroborated"
        ):
            last_answer = "uncorroborated"
        return cls(
            started_at_s=record.started_at_s,
            inquiries=record.inquiries,
            consecutive_not_found=record.consecutive_not_found,
            first_not_found_at_s=record.first_not_found_at_s,
            resubmits=record.resubmits,
            last_answer=last_answer,
            history=history,
            evidence=record.evidence,
        )

    def to_dict(self) -> dict[str, Any]:
        """``to_record()`` as plain JSON values: the ``resolution`` object of a journal record."""
        return self.to_record().model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResolutionState:
        """Inverse of ``to_dict``; raises ``ValueError`` on anything malformed (a corrupt journal record)."""
        return cls.from_record(ResolutionRecord.model_validate(data))


# The journal's JSON types: a number may be written as an integer, never as a bool or a string.
_Seconds = Annotated[float, Field(strict=True)]
_Count = Annotated[int, Field(strict=True, ge=0)]
_Code = Annotated[str, Field(strict=True)]
JournalEntry = tuple[_Seconds, AnswerKind, _Code | None]  # [at_s, answer kind, response code]


def _absent(value: object) -> bool:
    return value is None


class ResolutionRecord(BaseModel):
    """A ``ResolutionState`` as the journal holds it (``JournalRecord.resolution``): the v1 JSON, key for key
    and in the same order, that an older worker reads too. ``evidence`` (a key older workers ignore) is
    left out when there is none; keys this worker does not know are kept, as they were when this was a
    ``dict``. Read it back with ``ResolutionState.from_record``: it checks the version and never believes
    a journaled PROCESSED."""

    model_config = ConfigDict(extra="allow", frozen=True, title="resolution state")

    v: Annotated[int, Field(strict=True)]
    started_at_s: _Seconds
    inquiries: _Count
    consecutive_not_found: _Count
    first_not_found_at_s: _Seconds | None = None
    resubmits: _Count
    last_answer: AnswerKind | None = None
    history: list[JournalEntry]
    evidence: Annotated[_Code | None, Field(exclude_if=_absent)] = None


@dataclass(frozen=True)
class InquireAt:
    """Send the next Status Inquiry at ``at_s`` (epoch seconds); ``at_s <= now`` means now."""

    at_s: float

    def delay_s(self, now_s: float) -> float:
        return max(0.0, self.at_s - now_s)


@dataclass(frozen=True)
class Conclude:
    """Stop inquiring. ``resubmit``: the original was confirmed not executed and may be sent again."""

    outcome: ConcludeOutcome
    reason: str
    response_code: str | None = None


ResolutionMove = InquireAt | Conclude
"""The next move in resolving an ambiguous outcome: ask again (at a time), or stop (with a conclusion)."""


def deadline_at_s(policy: ResolutionPolicy, state: ResolutionState) -> float:
    return state.started_at_s + policy.deadline_s


def next_step(
    policy: ResolutionPolicy, state: ResolutionState, now_s: float, *, pace_factor: float = 1.0
) -> ResolutionMove:
    """What to do now, from the state alone: after an answer, and equally after a restart.

    ``pace_factor`` (the breaker's ``resolution_pace_factor``) stretches the delays between inquiries;
    the deadline still clamps them.
    """
    if pace_factor <= 0:
        raise ValueError("pace_factor must be > 0")
    concluded = _conclusion(policy, state)
    if concluded is not None:
        return concluded
    deadline = deadline_at_s(policy, state)
    last = state.last_inquiry_at_s
    if last is not None and last >= deadline:
        evidence = f"; {state.evidence}" if state.evidence else ""
        return Conclude(
            "unresolved", f"no conclusion within {policy.deadline_s:g} s: {_summary(state)}{evidence}"
        )
    # Never before the grace: a not-found that early proves nothing, so the inquiry would be wasted.
    due = state.started_at_s + policy.first_inquiry_after_s
    if last is not None:
        due = max(due, last + policy.delay_after_s(state.inquiries) * pace_factor)
    return InquireAt(max(min(due, deadline), now_s))


def apply_answer(
    policy: ResolutionPolicy,
    state: ResolutionState,
    obs: StatusObservation,
    now_s: float,
    *,
    pace_factor: float = 1.0,
) -> tuple[ResolutionState, ResolutionMove]:
    """Record one Status Inquiry answer received at ``now_s`` and decide. Journal the returned state.

    An answer to an already concluded state changes nothing (the same conclusion comes back).
    """
    already = _conclusion(policy, state)
    if already is not None:
        return state, already
    updated = _record(policy, state, obs, now_s)
    return updated, next_step(policy, updated, now_s, pace_factor=pace_factor)


def describe(state: ResolutionState) -> str:
    """One sentence for humans: the result's ``detail`` and the review record's ``last_known_state``."""
    since = f"Outcome unknown since {_iso(state.started_at_s)}"
    resubmits = f"; resubmitted {state.resubmits} time(s)" if state.resubmits else ""
    evidence = f"; {state.evidence}" if state.evidence else ""
    if not state.history:
        return f"{since}; no Status Inquiry answered yet{resubmits}."
    at_s, kind, code = state.history[-1]
    streak = (
        f"; {state.consecutive_not_found} consecutive believed not-found answer(s)"
        if state.consecutive_not_found
        else ""
    )
    return (
        f"{since}; {len(state.history)} Status Inquiry answer(s) ({_tally(state.history)}), "
        f"the last at {_iso(at_s)}: {_answer(kind, code)}{streak}{resubmits}{evidence}."
    )


# --- the rules ------------------------------------------------------------------------------------------


def _record(
    policy: ResolutionPolicy, state: ResolutionState, obs: StatusObservation, now_s: float
) -> ResolutionState:
    streak, first = state.consecutive_not_found, state.first_not_found_at_s
    if obs.kind == "not_found":
        # Right after a timeout the inquiry may not see the transaction yet: before the grace, no evidence.
        if now_s - state.started_at_s >= policy.first_inquiry_after_s:
            streak += 1
            first = now_s if streak == 1 else first
    else:
        # "Consecutive" is strict: any other answer (even a transport failure) breaks the streak.
        streak, first = 0, None
    return replace(
        state,
        inquiries=state.inquiries + 1,
        consecutive_not_found=streak,
        first_not_found_at_s=first,
        last_answer=obs.kind,
        history=(*state.history, (now_s, obs.kind, obs.code)),
        evidence=obs.evidence if obs.kind == "uncorroborated" else state.evidence,
    )


def _conclusion(policy: ResolutionPolicy, state: ResolutionState) -> Conclude | None:
    if state.last_answer == "processed":
        return Conclude(
            "succeeded",
            f"Status Inquiry answered PROCESSED, corroborated by Transaction History "
            f"({state.inquiries} inquiries)",
            PROCESSED,
        )
    if state.consecutive_not_found < policy.not_found_confirmations:
        return None
    if any(kind == "uncorroborated" for _, kind, _ in _this_round(state)):
        # The API said PROCESSED for this trace number and amount, then "not found": that settles nothing
        # (the PROCESSED may have been ours, with History lagging). Never "failed" then; the deadline decides.
        return None
    code = state.history[-1][2] if state.history else None
    evidence = _not_found_evidence(state)
    if policy.not_found_policy == "resubmit":
        if state.resubmits < policy.resubmit_max:
            return Conclude(
                "resubmit",
                f"{evidence}; resubmitting ({state.resubmits + 1} of {policy.resubmit_max})",
                code,
            )
        return Conclude("failed", f"{evidence}; resubmit limit ({policy.resubmit_max}) reached", code)
    return Conclude("failed", evidence, code)


def _not_found_evidence(state: ResolutionState) -> str:
    codes = sorted({code or "?" for _, kind, code in state.history[-state.consecutive_not_found :]})
    first = state.first_not_found_at_s if state.first_not_found_at_s is not None else state.started_at_s
    span_s = state.history[-1][0] - first
    after_s = first - state.started_at_s
    return (
        f"confirmed not executed: {state.consecutive_not_found} consecutive not-found answers "
        f"({', '.join(codes)}) over {span_s:g} s, the first {after_s:g} s after the outcome became unknown"
    )


def _this_round(state: ResolutionState) -> tuple[HistoryEntry, ...]:
    return state.history[-state.inquiries :] if state.inquiries else ()


def _summary(state: ResolutionState) -> str:
    if not state.history or not state.inquiries:
        return "no Status Inquiry was answered"
    at_s, kind, code = state.history[-1]
    return (
        f"{state.inquiries} Status Inquiry answer(s) ({_tally(state.history[-state.inquiries :])}); "
        f"the last at {_iso(at_s)}: {_answer(kind, code)}"
    )


def _tally(history: tuple[HistoryEntry, ...]) -> str:
    counts = Counter(kind for _, kind, _ in history)
    parts = []
    for kind, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        codes = sorted({code for _, k, code in history if k == kind and code})
        parts.append(f"{kind} {count}" + (f" [{', '.join(codes)}]" if codes else ""))
    return ", ".join(parts)


def _answer(kind: AnswerKind, code: str | None) -> str:
    return f"{kind} ({code})" if code else kind


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


# --- reading a journaled state ---------------------------------------------------------------------------


def _journal_kind(kind: AnswerKind) -> AnswerKind:
    return "other" if kind == "uncorroborated" else kind


def _history_entry(at_s: float, kind: AnswerKind, code: str | None) -> HistoryEntry:
    if kind == "processed" or (kind == "other" and code == PROCESSED):
        kind = "uncorroborated"  # never believed on resume (from_record)
    return (at_s, kind, code)
