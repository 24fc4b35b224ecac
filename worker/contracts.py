"""The message contracts: what producers send, what the worker publishes.

These pydantic models are the source of truth; ``schemas/*.schema.json`` is generated from them
(``ecash-worker schemas --write``) and a test fails when the two drift.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_serializer, field_validator

from worker.amount_rules import AMOUNT_JSON_SCHEMA, command_amount

TRACE_NUMBER_PATTERN = r"^[0-9A-Za-z]{1,32}$"
MSISDN_PATTERN = r"^[0-9]{9,15}$"
# A stable namespace so that the same command message always yields the same event_id.
EVENT_NAMESPACE = uuid.UUID("6f1c2a8e-6a55-4b61-9d1e-8f0b4a3c2e10")


class CommandType(StrEnum):
    CHARGE = "charge"
    CREDIT = "credit"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"  # PROCESSED: money moved
    DECLINED = "declined"  # a definite business refusal: money did not move
    FAILED = "failed"  # money did not move for a technical reason (expired, confirmed not executed)
    REJECTED = "rejected"  # the command itself is invalid: never sent
    UNRESOLVED = "unresolved"  # nobody knows yet: handed to manual review


class ResolvedBy(StrEnum):
    RESPONSE = "response"
    STATUS_INQUIRY = "status_inquiry"
    JOURNAL = "journal"
    MANUAL = "manual"


def format_amount(value: Decimal) -> str:
    """A plain decimal string: ``100000``, ``1500.50``; never ``1E+5``, never a float."""
    normalized = value.quantize(Decimal("0.01"))
    if normalized == normalized.to_integral_value():
        return f"{normalized.to_integral_value():f}"
    return f"{normalized:f}"


class Command(BaseModel):
    """A charge or credit command (topic ``ecash.commands``, key = MSISDN, JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: CommandType
    trace_number: Annotated[str, Field(pattern=TRACE_NUMBER_PATTERN, description="The idempotency key")]
    msisdn: Annotated[str, Field(pattern=MSISDN_PATTERN)]
    amount: Annotated[Decimal, WithJsonSchema(AMOUNT_JSON_SCHEMA)]
    transfer_type_id: Annotated[str, Field(min_length=1, max_length=16)] | None = None
    account_type_id: Annotated[str, Field(min_length=1, max_length=16)] | None = None
    description: Annotated[str, Field(max_length=255)] | None = None
    expires_at: datetime | None = Field(
        None, description="Never start moving money after this instant (timezone required)"
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Echoed back on the result")

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_rules(cls, value: object) -> Decimal:
        return command_amount(value)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("expires_at needs a timezone (for example 2026-01-01T00:00:00Z)")
        if value is not None:
            try:
                value.astimezone(UTC)  # 9999-12-31T23:59-23:59 is after the last instant Python can hold
            except OverflowError:
                raise ValueError("expires_at is outside the years 1 to 9999 in UTC") from None
        return value

    @field_serializer("amount")
    def _ser_amount(self, value: Decimal) -> str:
        return format_amount(value)


class Result(BaseModel):
    """The one outcome of a command (topic ``ecash.results``, key = MSISDN)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(description="Identical when the same result is published again")
    trace_number: str
    type: CommandType | None
    msisdn: str | None
    amount: Decimal | None
    outcome: Outcome
    response_code: str | None = None
    transaction_number: str | None = None
    trx_datetime: str | None = None
    resolved_by: ResolvedBy
    attempts: int = 0
    detail: str
    completed_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_serializer("amount")
    def _ser_amount(self, value: Decimal | None) -> str | None:
        return None if value is None else format_amount(value)


class DeadLetter(BaseModel):
    """An unparsable message (topic ``ecash.commands.dlq``): nothing lost, reason attached."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str
    topic: str
    partition: int
    offset: int
    key_b64: str | None
    value_b64: str | None
    headers: list[tuple[str, str]] = Field(default_factory=list, description="Header values as base64")
    timestamp_ms: int | None = None
    dead_lettered_at: datetime


class Attempt(BaseModel):
    """One call to the API made for a command, with its answer: the evidence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: datetime
    operation: Literal["charge", "credit", "status"]
    outcome_class: str
    response_code: str | None = None
    detail: str = ""


class ReviewRecord(BaseModel):
    """What an operator needs to settle an unresolved command (topic ``ecash.review``).

    Key: ``<trace number>:<source partition>:<source offset>`` (``review_item_key``), so two commands that
    share a trace number never share an item (records written before 2026-12 are keyed by trace number).
    A record with ``state = "closed"`` supersedes the open one (the topic is compacted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trace_number: str
    state: Literal["open", "closed"]
    command: Command
    source_partition: int
    source_offset: int
    attempts: list[Attempt]
    last_known_state: str
    opened_at: datetime
    closed_at: datetime | None = None
    closed_outcome: Outcome | None = None
    closed_by: str | None = None
    close_reason: str | None = None


class ReviewDecision(BaseModel):
    """An operator's verdict on an unresolved command (topic ``ecash.review.decisions``, key = MSISDN).

    It goes to the partition of the decisions topic with the number of the command's partition (the
    review record's ``source_partition``; the two topics are co-partitioned), so the worker owning that
    partition, the journal's only writer, applies it in order with the wallet's other commands, wherever
    the command arrived. It has a topic of its own so that Kafka ACLs can let operators, and only them,
    close reviews. ``ecash-worker review resolve`` sends it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["review_decision"]
    trace_number: Annotated[str, Field(pattern=TRACE_NUMBER_PATTERN)]
    msisdn: Annotated[str, Field(pattern=MSISDN_PATTERN)]
    outcome: Literal["succeeded", "failed"]
    decided_by: Annotated[str, Field(min_length=1, max_length=100)]
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    transaction_number: Annotated[str, Field(max_length=64)] | None = None
    source_partition: Annotated[int, Field(ge=0)] | None = Field(
        None, description="The review item's command partition (``review resolve`` sets it)"
    )
    source_offset: Annotated[int, Field(ge=0)] | None = Field(
        None, description="The review item's command offset: the decision applies to that command only"
    )


def review_item_key(trace_number: str, partition: int, offset: int) -> str:
    return f"{trace_number}:{partition}:{offset}"


def event_id_for(trace_number: str, partition: int, offset: int) -> str:
    """One result per command message: republishing it after a crash gives the same id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{trace_number}:{partition}:{offset}"))


def decision_event_id(trace_number: str, partition: int, offset: int) -> str:
    """The result a review decision publishes (its message on the decisions topic): never a command's id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{trace_number}:decision:{partition}:{offset}"))


CONTRACTS: dict[str, type[BaseModel]] = {
    "command": Command,
    "result": Result,
    "dead_letter": DeadLetter,
    "review_record": ReviewRecord,
    "review_decision": ReviewDecision,
}
