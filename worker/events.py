"""What happened, as plain frozen data. The domain emits these; adapters turn them into metrics and logs.

Domain code never imports prometheus_client or the logging setup: it calls ``sink.emit(event)``.
No event carries a secret. MSISDNs and trace numbers may appear in events (logs mask the MSISDN);
the metrics adapter never uses them as labels.

It lives on the ground floor and imports from ``worker`` only what is already there: ``contracts`` and
the pure ``core`` (whose ``AnswerKind``, ``ConcludeOutcome`` and ``BreakerState`` some events carry).
Every layer emits events (``ecash``, ``pipeline``) and ``observability`` reads them, so this module must
sit below all of them. Under ``observability/`` it made ``ecash`` import ``observability`` while
``observability.metrics`` imports ``ecash``: an arrow running back up (docs/design.md, "Module map";
``tests/unit/test_packages.py`` keeps it so).

The fixed label sets of the events' fields (``LoginKind``, ``RetryReason``, ...) are defined here, next
to the field that carries them, unless they belong to what ``core`` or ``contracts`` define;
``observability/metrics.py`` derives its pre-created label values from them (``typing.get_args``), so
a value mypy accepts in an event is a value the metrics pre-create.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from worker.contracts import CommandType, Outcome, ResolvedBy
from worker.core.breaker import BreakerState
from worker.core.resolution import AnswerKind, ConcludeOutcome

__all__ = [
    "NULL_SINK",
    "ApiCallFinished",
    "BreakerProbed",
    "BreakerStateChanged",
    "ClaimReadBack",
    "CommandConsumed",
    "CommandRejected",
    "DeadLetterLabel",
    "DeadLettered",
    "Event",
    "EventSink",
    "FanOut",
    "FatalConfiguration",
    "JournalRestored",
    "LoginFinished",
    "LoginKind",
    "LoopLagged",
    "NoCommandType",
    "PartitionFenced",
    "PartitionsChanged",
    "PipelineSnapshot",
    "ProbeResult",
    "Recorder",
    "RefusalReason",
    "RejectReason",
    "ResolutionFinished",
    "ResolutionStarted",
    "ResultPublished",
    "RetryReason",
    "RetryScheduled",
    "ReviewDecisionRefused",
    "StatusInquiryAnswered",
    "TransactionCommitted",
]

# The fixed label sets of the fields below, each defined once: metrics derive their label values here.
LoginKind = Literal["login", "relogin"]  # the first login, or one after TOKEN_EXPIRED
RetryReason = Literal[
    "not_sent", "session_expired", "read_retry", "resubmit", "api_unavailable", "lease_expired"
]
# Why a command was rejected without a money call; the sentence lives in the result's detail.
RejectReason = Literal["invalid", "trace_reused", "key_not_msisdn"]
DeadLetterLabel = Literal[
    # worker/pipeline/strict_json.py: the bytes are not JSON we read
    "not_json",
    "too_deep",
    "number_too_large",
    # worker/pipeline/intake.py: JSON, but nothing can be answered for it
    "not_a_command",
    "oversize",
    "no_trace_number",
    "duplicate_keys",
    "invalid_review_decision",
    # worker/pipeline/review_decisions.py, key_rule.py, dispatch.py: a decision that cannot be applied here
    "review_decision_not_applicable",
    "review_decision_refused",
    "review_decision_wrong_topic",
    "not_a_review_decision",
    # a bug, or a message that failed too often (worker/pipeline/dispatch.py)
    "internal_error",
]
RefusalReason = Literal["waiting_for_status_inquiry", "status_inquiry_processed"]  # a review decision refused
NoCommandType = Literal["unknown"]  # a result for a message with no valid CommandType


class ProbeResult(StrEnum):
    """What the breaker's background probe did (worker/pipeline/probe.py)."""

    CLOSED = "closed"  # the API answered: the breaker closed
    REOPENED = "reopened"  # no usable answer: the breaker is open again, for longer
    FATAL = "fatal"  # the API refused the credentials: a configuration error, consumption stays stopped
    NO_ANSWER = "no_answer"  # the call ended before any answer reached the breaker (a bug, or cancelled)


@dataclass(frozen=True)
class ApiCallFinished:
    """One HTTP exchange with the API (or an attempt that failed in transport)."""

    operation: str  # worker.ecash.wire.Operation value
    code: str  # the response code (PROCESSED, TOKEN_EXPIRED, ...) or a transport class: not_sent, ambiguous
    duration_s: float
    detail: str = ""


@dataclass(frozen=True)
class LoginFinished:
    kind: LoginKind
    ok: bool
    code: str  # PROCESSED, INVALID_CREDENTIAL, not_sent, ...


@dataclass(frozen=True)
class RetryScheduled:
    operation: str
    reason: RetryReason
    attempt: int
    delay_s: float


@dataclass(frozen=True)
class CommandConsumed:
    partition: int


@dataclass(frozen=True)
class CommandRejected:
    trace_number: str
    msisdn: str | None
    reason: RejectReason


@dataclass(frozen=True)
class DeadLettered:
    partition: int
    offset: int
    reason: DeadLetterLabel


@dataclass(frozen=True)
class ResultPublished:
    trace_number: str
    msisdn: str | None
    command_type: CommandType | NoCommandType
    outcome: Outcome
    resolved_by: ResolvedBy
    response_code: str | None
    attempts: int
    end_to_end_s: float | None  # from the command's Kafka timestamp to the result's publication


@dataclass(frozen=True)
class ResolutionStarted:
    trace_number: str
    msisdn: str
    reason: str  # why it is ambiguous (read_timeout, http_5xx, ...)


@dataclass(frozen=True)
class StatusInquiryAnswered:
    trace_number: str
    answer: AnswerKind
    code: str | None


@dataclass(frozen=True)
class ResolutionFinished:
    trace_number: str
    outcome: ConcludeOutcome
    inquiries: int
    duration_s: float


@dataclass(frozen=True)
class JournalRestored:
    partition: int
    records: int
    duration_s: float


@dataclass(frozen=True)
class BreakerStateChanged:
    state: BreakerState
    reason: str


@dataclass(frozen=True)
class BreakerProbed:
    """The background probe's call while half-open (worker/pipeline/probe.py), and what it did."""

    result: ProbeResult
    duration_s: float


@dataclass(frozen=True)
class FatalConfiguration:
    reason: str  # e.g. "login refused: INVALID_CREDENTIAL" (never the secret itself)


@dataclass(frozen=True)
class PartitionsChanged:
    assigned: tuple[int, ...]
    revoked: tuple[int, ...]


@dataclass(frozen=True)
class ReviewDecisionRefused:
    trace_number: str
    reason: RefusalReason


@dataclass(frozen=True)
class PartitionFenced:
    """This worker lost a partition it believed it owned (fenced by a new owner, or its producer died)."""

    partition: int
    reason: str


@dataclass(frozen=True)
class TransactionCommitted:
    """One transaction of a partition's writer (worker/pipeline/ownership.py): how long its first write
    waited for it to begin (the linger, or a transaction before it), and the transaction itself."""

    partition: int
    records: int
    waited_s: float
    commit_s: float


@dataclass(frozen=True)
class ClaimReadBack:
    """A command's claim, committed, was read back from the claims index: from its write to that moment."""

    seconds: float


@dataclass(frozen=True)
class LoopLagged:
    """How late the event loop ran a timer (worker/observability/loop_lag.py): the wait every await adds
    when the process is short of CPU."""

    seconds: float


Event = (
    ApiCallFinished
    | LoginFinished
    | RetryScheduled
    | CommandConsumed
    | CommandRejected
    | DeadLettered
    | ResultPublished
    | ResolutionStarted
    | StatusInquiryAnswered
    | ResolutionFinished
    | JournalRestored
    | BreakerStateChanged
    | BreakerProbed
    | FatalConfiguration
    | PartitionsChanged
    | ReviewDecisionRefused
    | PartitionFenced
    | TransactionCommitted
    | ClaimReadBack
    | LoopLagged
)


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


@dataclass
class FanOut:
    """Hands every event to each hook in turn; a failing hook never breaks the domain."""

    hooks: list[Callable[[Event], None]] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        for hook in self.hooks:
            with contextlib.suppress(Exception):  # instrumentation must never stop money moving
                hook(event)


@dataclass
class Recorder:
    """Keeps every event: for tests."""

    events: list[Event] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


NULL_SINK: EventSink = FanOut()


@dataclass(frozen=True)
class PipelineSnapshot:
    """Gauges read at scrape time from the running pipeline (not events: they are levels)."""

    in_flight: int = 0
    waiting: int = 0  # buffered behind their MSISDN
    resolving: int = 0
    assigned_partitions: tuple[int, ...] = ()
    lag_messages: dict[int, int] = field(default_factory=dict)
    lag_seconds: dict[int, float] = field(default_factory=dict)
    last_processed_unix_s: float = 0.0
    breaker_state: str = "closed"
    logged_in: bool = False
    consuming: bool = False
    fatal: str | None = None
    loop_heartbeat_unix_s: float = 0.0
    review_open: int = 0  # open review items in the owned partitions' journals
    review_open_oldest_s: float = 0.0  # age of the oldest of them (0 when none)
