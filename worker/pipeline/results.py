"""Building result events and review records from what the worker knows. Pure."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticCustomError

from worker.amount_rules import command_amount
from worker.contracts import (
    Attempt,
    Command,
    CommandType,
    Outcome,
    ResolvedBy,
    Result,
    ReviewDecision,
    ReviewRecord,
    event_id_for,
)
from worker.pipeline.intake import Rejection

__all__ = [
    "claimed_elsewhere_result",
    "closed_review_record",
    "command_result",
    "duplicate_result",
    "manual_result",
    "rejection_result",
    "review_record",
    "trace_reused_result",
]

if TYPE_CHECKING:
    from worker.pipeline.claims import Claim
    from worker.pipeline.journal import JournalRecord


def command_result(
    command: Command,
    *,
    partition: int,
    offset: int,
    outcome: Outcome,
    resolved_by: ResolvedBy,
    detail: str,
    now: datetime,
    attempts: int,
    response_code: str | None = None,
    transaction_number: str | None = None,
    trx_datetime: str | None = None,
) -> Result:
    return Result(
        event_id=event_id_for(command.trace_number, partition, offset),
        trace_number=command.trace_number,
        type=command.type,
        msisdn=command.msisdn,
        amount=command.amount,
        outcome=outcome,
        response_code=response_code,
        transaction_number=transaction_number,
        trx_datetime=trx_datetime,
        resolved_by=resolved_by,
        attempts=attempts,
        detail=detail,
        completed_at=now,
        metadata=command.metadata,
    )


def rejection_result(rejection: Rejection, *, partition: int, offset: int, now: datetime) -> Result:
    raw = rejection.raw
    kind = raw.get("type")
    metadata = raw.get("metadata")
    return Result(
        event_id=event_id_for(rejection.trace_number, partition, offset),
        trace_number=rejection.trace_number,
        type=CommandType(kind) if kind in ("charge", "credit") else None,
        msisdn=rejection.msisdn,
        amount=_amount_or_none(raw.get("amount")),
        outcome=Outcome.REJECTED,
        resolved_by=ResolvedBy.RESPONSE,
        attempts=0,
        detail=rejection.detail + "; nothing was sent to the API",
        completed_at=now,
        metadata=metadata if isinstance(metadata, dict) else {},
    )


def trace_reused_result(command: Command, *, partition: int, offset: int, now: datetime) -> Result:
    return command_result(
        command,
        partition=partition,
        offset=offset,
        outcome=Outcome.REJECTED,
        resolved_by=ResolvedBy.JOURNAL,
        detail=(
            f"trace number {command.trace_number} was already used for a command with different "
            "parameters (type, MSISDN, amount or transfer type); nothing was sent to the API"
        ),
        now=now,
        attempts=0,
    )


def claimed_elsewhere_result(
    command: Command, owner: Claim, *, partition: int, offset: int, now: datetime
) -> Result:
    """A trace number another command owns, with other parameters: ``rejected``, nothing sent."""
    return command_result(
        command,
        partition=partition,
        offset=offset,
        outcome=Outcome.REJECTED,
        resolved_by=ResolvedBy.JOURNAL,
        detail=(
            f"trace number {command.trace_number} is already owned by the command at {owner.where}, which "
            "has different parameters (type, MSISDN, amount or transfer type); a trace number moves money "
            "once; nothing was sent to the API"
        ),
        now=now,
        attempts=0,
    )


def duplicate_result(
    original: Result, *, partition: int, offset: int, now: datetime, owner: str | None = None
) -> Result:
    """A second command with the same trace number and parameters: the first one's outcome, once more."""
    earlier = f"the command at {owner}" if owner else "an earlier command with this trace number"
    return original.model_copy(
        update={
            "event_id": event_id_for(original.trace_number, partition, offset),
            "resolved_by": ResolvedBy.JOURNAL,
            "attempts": 0,
            "detail": f"duplicate of {earlier}; its outcome: {original.detail}",
            "completed_at": now,
        }
    )


def review_record(
    command: Command,
    *,
    partition: int,
    offset: int,
    attempts: list[Attempt],
    last_known_state: str,
    now: datetime,
) -> ReviewRecord:
    return ReviewRecord(
        trace_number=command.trace_number,
        state="open",
        command=command,
        source_partition=partition,
        source_offset=offset,
        attempts=attempts,
        last_known_state=last_known_state,
        opened_at=now,
    )


def _amount_or_none(value: Any) -> Decimal | None:
    """The rejected command's amount when it is a valid amount, else None (never echoed as it came)."""
    try:
        return command_amount(value)
    except PydanticCustomError:
        return None


def manual_result(unresolved: Result, decision: ReviewDecision, *, event_id: str, now: datetime) -> Result:
    return unresolved.model_copy(
        update={
            "event_id": event_id,
            "outcome": Outcome(decision.outcome),
            "resolved_by": ResolvedBy.MANUAL,
            "transaction_number": decision.transaction_number,
            "detail": f"closed by {decision.decided_by} after manual review: {decision.reason}",
            "completed_at": now,
        }
    )


def closed_review_record(
    command: Command,
    decision: ReviewDecision,
    *,
    record: JournalRecord,
    result: Result,
    opened_at: datetime,
    now: datetime,
) -> ReviewRecord:
    return ReviewRecord(
        trace_number=command.trace_number,
        state="closed",
        command=command,
        source_partition=record.partition,
        source_offset=record.offset,
        attempts=record.attempts,
        last_known_state=f"closed as {decision.outcome}",
        opened_at=opened_at,
        closed_at=now,
        closed_outcome=result.outcome,
        closed_by=decision.decided_by,
        close_reason=decision.reason,
    )
