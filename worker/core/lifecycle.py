"""A command's life as decisions: given what the journal knows, the command, its position and the time,
what to do next; given an answer from the API, what follows. No I/O, no clock, no settings: plain values
in, an action value out. ``worker.pipeline.processor`` carries the actions out, one at a time, in a flat
loop (docs/design.md, "A command's life").

The actions, in the order a command meets them:

- on arrival (``on_command``): ``RejectReused`` (the trace number is known with other parameters),
  ``OffsetOnly`` (this very message was answered), ``AnswerDuplicate`` (another message with the same
  parameters was answered: its outcome again), ``SettleEarlier`` (an earlier message's money call is
  unsettled: settle that first, then look again), ``Resolve`` (this message's money call may have gone
  out: Status Inquiry), ``Claim`` (claim the trace number deployment-wide first), ``Expire`` (too late
  to send), ``Send``;
- after a money call (``on_money_answer``): ``Finish`` (an outcome), ``RetryNotSent`` (provably not
  sent: wait and send again), ``GiveUpNotSent`` (not sent until the deadline: failed, no money moved),
  ``AgentRefused`` (the API refuses the agent itself: stop new money, wait for an operator),
  ``Ambiguous`` (the money may have moved: resolve);
- after a resolution concludes (``on_conclusion``): ``Finish``, ``Resend`` (not found, and the policy
  resubmits) or ``HandToReview`` (unresolved);
- for an operator's review decision (``on_review_decision``): ``AlreadyApplied``, ``NotApplicable``,
  ``VerifyFirst`` (a ``failed`` decision is checked with Status Inquiry) or ``Apply``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from worker.core.resolution import Conclude

__all__ = [
    "AgentRefused",
    "AlreadyApplied",
    "Ambiguous",
    "AnswerDuplicate",
    "Apply",
    "Arrival",
    "CallClassName",
    "Claim",
    "CommandStep",
    "Expire",
    "Finish",
    "GiveUpNotSent",
    "HandToReview",
    "Known",
    "MoneyAnswer",
    "MoneyStep",
    "NotApplicable",
    "NotSentRetry",
    "OffsetOnly",
    "OpenItem",
    "OutcomeName",
    "RejectReused",
    "Resend",
    "ResolutionStep",
    "Resolve",
    "RetryNotSent",
    "ReviewStep",
    "Send",
    "SettleEarlier",
    "VerifyFirst",
    "on_command",
    "on_conclusion",
    "on_money_answer",
    "on_review_decision",
]

OutcomeName = Literal["succeeded", "declined", "failed"]
CallClassName = Literal["succeeded", "declined", "not_sent", "ambiguous"]


# --- on arrival ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Known:
    """What the partition's journal knows of the command's trace number."""

    fingerprint: str
    done: bool  # an outcome is recorded (with its result)
    partition: int
    offset: int  # the message the record was written for


@dataclass(frozen=True)
class Arrival:
    """A command as it arrives: its parameters' fingerprint, where it was read, and its expiry."""

    fingerprint: str
    partition: int
    offset: int
    expires_at: datetime | None
    claims: bool  # the deployment-wide claims are on (claims.py)
    claimed: bool  # ... and this message owns its claim


@dataclass(frozen=True)
class RejectReused:
    """The trace number is known here with other parameters: ``rejected``, no money call."""


@dataclass(frozen=True)
class OffsetOnly:
    """This very message was answered (its result committed with its record): only its offset moves."""


@dataclass(frozen=True)
class AnswerDuplicate:
    """Another message with the same parameters was answered: publish that outcome for this one."""


@dataclass(frozen=True)
class SettleEarlier:
    """An earlier message's money call is unsettled: settle it as that message, then decide again."""


@dataclass(frozen=True)
class Resolve:
    """This message's money call may have gone out (an intent without an outcome): Status Inquiry."""

    reason: str = "journal_intent"


@dataclass(frozen=True)
class Claim:
    """Claim the trace number for the whole deployment before any money call, then decide again."""


@dataclass(frozen=True)
class Expire:
    """The command expired before it was sent: ``failed``, no money moved."""


@dataclass(frozen=True)
class Send:
    """Send the Charge or Credit (after its intent is committed)."""


CommandStep = RejectReused | OffsetOnly | AnswerDuplicate | SettleEarlier | Resolve | Claim | Expire | Send


def on_command(known: Known | None, arrival: Arrival, now: datetime) -> CommandStep:
    """What to do with a command, given what the journal knows of its trace number."""
    if known is not None:
        if known.fingerprint != arrival.fingerprint:
            return RejectReused()
        same_message = (known.partition, known.offset) == (arrival.partition, arrival.offset)
        if known.done:
            return OffsetOnly() if same_message else AnswerDuplicate()
        return Resolve() if same_message else SettleEarlier()
    if arrival.claims and not arrival.claimed:
        return Claim()
    if arrival.expires_at is not None and now >= arrival.expires_at:
        return Expire()
    return Send()


# --- after a money call --------------------------------------------------------------------------------
@dataclass(frozen=True)
class NotSentRetry:
    """How long to keep trying a money call that provably never left (stamina's shape, as data): waits
    double from ``initial_s`` up to ``max_s``, until ``deadline_s`` after the first try."""

    initial_s: float
    max_s: float
    deadline_s: float

    def __post_init__(self) -> None:
        if min(self.initial_s, self.max_s, self.deadline_s) <= 0:
            raise ValueError("the not-sent retry's delays and deadline must be positive")

    def wait_s(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 = the first)."""
        return float(min(self.initial_s * 2 ** max(0, retry - 1), self.max_s))


@dataclass(frozen=True)
class MoneyAnswer:
    """The API's answer to a Charge or Credit, reduced to what the decision needs."""

    call_class: CallClassName
    response_code: str | None
    fatal_config: bool  # the API refuses the agent itself (NOT_ALLOWED, INVALID_CREDENTIAL...)


@dataclass(frozen=True)
class Finish:
    """An outcome: the journal record, the result and the offset in one transaction."""

    outcome: OutcomeName
    detail: str


@dataclass(frozen=True)
class RetryNotSent:
    delay_s: float


@dataclass(frozen=True)
class GiveUpNotSent:
    detail: str


@dataclass(frozen=True)
class AgentRefused:
    reason: str


@dataclass(frozen=True)
class Ambiguous:
    """The money may have moved: resolve through Status Inquiry (``reason`` is a bounded label)."""


MoneyStep = Finish | RetryNotSent | GiveUpNotSent | AgentRefused | Ambiguous


def on_money_answer(
    answer: MoneyAnswer,
    *,
    kind: str,
    evidence: str,
    retry: NotSentRetry,
    retries_so_far: int,
    elapsed_s: float,
) -> MoneyStep:
    """What follows a money call's answer. ``elapsed_s``: since the command's first try."""
    if answer.fatal_config:
        # No money moved, and answering "declined" would burn the whole backlog.
        return AgentRefused(f"the API refuses the agent: {answer.response_code}")
    if answer.call_class == "succeeded":
        return Finish("succeeded", f"{kind} processed")
    if answer.call_class == "declined":
        return Finish("declined", f"declined by the API: {answer.response_code}")
    if answer.call_class == "not_sent":
        if elapsed_s >= retry.deadline_s:
            return GiveUpNotSent(
                f"the API could not be reached for {retry.deadline_s:.0f} s; "
                f"the request never left ({evidence}); no money moved"
            )
        return RetryNotSent(retry.wait_s(retries_so_far + 1))
    return Ambiguous()


# --- after a resolution concludes ----------------------------------------------------------------------
@dataclass(frozen=True)
class Resend:
    """Not found, and the policy resubmits: a fresh intent and the money call again."""


@dataclass(frozen=True)
class HandToReview:
    """Unresolved: the review record, the outcome and the result in one transaction."""

    detail: str


ResolutionStep = Finish | Resend | HandToReview


def on_conclusion(conclusion: Conclude, *, kind: str, evidence: str | None) -> ResolutionStep:
    """What a resolution's conclusion means. ``evidence``: History's corroboration of a PROCESSED (only a
    corroborated PROCESSED concludes ``succeeded``; a resumed resolution never carries one)."""
    if conclusion.outcome == "succeeded":
        if evidence is None:
            raise ValueError("succeeded without a corroborated PROCESSED")
        return Finish(
            "succeeded",
            f"{kind} confirmed by Status Inquiry after an ambiguous answer; {evidence}",
        )
    if conclusion.outcome == "failed":
        return Finish("failed", conclusion.reason)
    if conclusion.outcome == "resubmit":
        return Resend()
    return HandToReview("unresolved: " + conclusion.reason + "; handed to manual review")


# --- an operator's review decision ---------------------------------------------------------------------
@dataclass(frozen=True)
class OpenItem:
    """What the journal holds for the decision's trace number."""

    state: str  # the record's outcome if it has one, else its journal state
    unresolved: bool
    msisdn: str
    offset: int  # the message the record was written for
    result_event_id: str | None


@dataclass(frozen=True)
class AlreadyApplied:
    """This decision again, after a crash: it was applied with its offset. Offset only."""


@dataclass(frozen=True)
class NotApplicable:
    reason: str


@dataclass(frozen=True)
class VerifyFirst:
    """A ``failed`` decision: refused if a fresh Status Inquiry says the money moved."""


@dataclass(frozen=True)
class Apply:
    """Close the item: the final result (``resolved_by: manual``) and the closed review record."""


ReviewStep = AlreadyApplied | NotApplicable | VerifyFirst | Apply


def on_review_decision(
    item: OpenItem | None,
    *,
    trace_number: str,
    msisdn: str,
    outcome: str,
    source_offset: int | None,
    event_id: str,
    verified: bool = False,
) -> ReviewStep:
    """Whether an operator's decision applies to what the journal holds. ``verified``: a ``failed``
    decision's Status Inquiry did not say the money moved."""
    if item is not None and item.result_event_id == event_id:
        return AlreadyApplied()
    applies = (
        item is not None
        and item.unresolved
        and item.msisdn == msisdn
        and source_offset in (None, item.offset)
    )
    if item is None or not applies:
        state = "unknown" if item is None else item.state
        return NotApplicable(f"trace number {trace_number} has no unresolved command here (state: {state})")
    if outcome == "failed" and not verified:
        return VerifyFirst()
    return Apply()
