"""One realistic instance of every domain event, and a snapshot with every gauge set: shared by the tests."""

from __future__ import annotations

from worker.contracts import CommandType, Outcome, ResolvedBy
from worker.core.breaker import BreakerState
from worker.events import (
    ApiCallFinished,
    BreakerProbed,
    BreakerStateChanged,
    ClaimReadBack,
    CommandConsumed,
    CommandRejected,
    DeadLettered,
    Event,
    FatalConfiguration,
    JournalRestored,
    LoginFinished,
    LoopLagged,
    PartitionFenced,
    PartitionsChanged,
    PipelineSnapshot,
    ProbeResult,
    ResolutionFinished,
    ResolutionStarted,
    ResultPublished,
    RetryScheduled,
    ReviewDecisionRefused,
    StatusInquiryAnswered,
    TransactionCommitted,
)

MSISDN = "08131234567"
TRACE = "2016041312050101"

EVERY_EVENT: tuple[Event, ...] = (
    ApiCallFinished(operation="charge", code="PROCESSED", duration_s=0.120),
    LoginFinished(kind="login", ok=True, code="PROCESSED"),
    RetryScheduled(operation="charge", reason="not_sent", attempt=2, delay_s=0.4),
    CommandConsumed(partition=3),
    CommandRejected(trace_number=TRACE, msisdn=MSISDN, reason="invalid"),
    DeadLettered(partition=3, offset=41, reason="not_json"),
    ResultPublished(
        trace_number=TRACE,
        msisdn=MSISDN,
        command_type=CommandType.CHARGE,
        outcome=Outcome.SUCCEEDED,
        resolved_by=ResolvedBy.RESPONSE,
        response_code="PROCESSED",
        attempts=1,
        end_to_end_s=0.250,
    ),
    ResolutionStarted(trace_number=TRACE, msisdn=MSISDN, reason="read_timeout"),
    StatusInquiryAnswered(trace_number=TRACE, answer="processed", code="PROCESSED"),
    ResolutionFinished(trace_number=TRACE, outcome="succeeded", inquiries=2, duration_s=15.0),
    JournalRestored(partition=3, records=120, duration_s=0.8),
    BreakerStateChanged(state=BreakerState.OPEN, reason="failure ratio 0.6 over 30 s"),
    BreakerProbed(result=ProbeResult.CLOSED, duration_s=0.05),
    FatalConfiguration(reason="login refused: INVALID_CREDENTIAL"),
    PartitionsChanged(assigned=(0, 3), revoked=(5,)),
    PartitionFenced(2, "transaction failed: ProducerFenced"),
    ReviewDecisionRefused("T9", "status_inquiry_processed"),
    TransactionCommitted(partition=3, records=14, waited_s=0.02, commit_s=0.012),
    ClaimReadBack(seconds=0.045),
    LoopLagged(seconds=0.004),
)


def busy_snapshot(heartbeat_unix_s: float = 0.0) -> PipelineSnapshot:
    return PipelineSnapshot(
        in_flight=7,
        waiting=3,
        resolving=2,
        assigned_partitions=(0, 3),
        lag_messages={0: 12, 3: 0},
        lag_seconds={0: 4.5, 3: 0.0},
        last_processed_unix_s=1_767_225_600.0,
        breaker_state="closed",
        logged_in=True,
        consuming=True,
        fatal=None,
        loop_heartbeat_unix_s=heartbeat_unix_s,
        review_open=2,
        review_open_oldest_s=5400.0,
    )
