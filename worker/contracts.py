"""The message contracts: what producers send, what the worker publishes.

These pydantic models are the source of truth; ``schemas/*.schema.json`` is generated from them
(``ecash-worker schemas``, ``worker/schema_export.py``) and a test fails when the two drift. The schemas are
written for code generators (draft-07, named types, no ``anyOf``): see docs/contracts.md, "Versions and
evolution", for what may change within a version, and ``schemas/released/`` for what was released.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_serializer, field_validator
from pydantic_core import PydanticCustomError

from worker.amount_rules import AMOUNT_JSON_SCHEMA, command_amount

__all__ = [
    "CONTRACTS",
    "EVENT_NAMESPACE",
    "INT32",
    "INT64",
    "METADATA_JSON_SCHEMA",
    "MSISDN_PATTERN",
    "PUBLISHED",
    "READ_BY_THE_WORKER",
    "SCHEMA_VERSION",
    "TRACE_NUMBER_PATTERN",
    "Attempt",
    "Command",
    "CommandType",
    "DeadLetter",
    "Header",
    "Outcome",
    "PublishedVersionField",
    "ResolvedBy",
    "Result",
    "ReviewDecision",
    "ReviewRecord",
    "SchemaVersionField",
    "decision_event_id",
    "event_id_for",
    "format_amount",
    "metadata_text",
    "review_item_key",
]

TRACE_NUMBER_PATTERN = r"^[0-9A-Za-z]{1,32}$"
MSISDN_PATTERN = r"^[0-9]{9,15}$"
SCHEMA_VERSION = 1
"""The major version of every contract: ``schema_version`` in each message, ``schemas/released/v1/``.

Within a major version a contract only gains optional fields (``tests/unit/contracts``, the compatibility
check against ``schemas/released/``); anything else is a new major version, on new topics."""
INT64: dict[str, Any] = {"format": "int64"}  # Kafka offsets and epoch milliseconds
INT32: dict[str, Any] = {"format": "int32"}  # Kafka partitions, counts
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


METADATA_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"type": "string"},
    "description": (
        "The producer's own data, never read by the worker, echoed on the result: string values. "
        "Other JSON values are still accepted and come back as their JSON text"
    ),
}


def metadata_text(metadata: object) -> dict[str, str]:
    """Metadata as the contract declares it (string values): others as compact JSON text. Total."""
    if not isinstance(metadata, dict):
        return {}
    return {
        str(key): value if isinstance(value, str) else _json_text(value) for key, value in metadata.items()
    }


def _json_text(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return str(value)


def _schema_version_read(value: int) -> int:
    if value != SCHEMA_VERSION:
        raise PydanticCustomError(
            "schema_version_unsupported",
            "this worker reads version {supported} of this contract, not {value}",
            {"supported": SCHEMA_VERSION, "value": value},
        )
    return value


def _is_none(value: object) -> bool:
    """A nullable enum is left out when unknown, not written as null: generators type a nullable
    reference badly (Modelina: a wrapper struct), a property that may be absent well."""
    return value is None


SchemaVersionField = Annotated[
    int,
    Field(
        description=(
            "The contract's major version (1). Optional in commands and decisions; the worker refuses "
            "any other version"
        ),
        json_schema_extra=INT32,
    ),
]
PublishedVersionField = Annotated[
    int,
    Field(
        description="The contract's major version: 1. Consumers read it, never assume it",
        json_schema_extra=INT32,
    ),
]


class Command(BaseModel):
    """A charge or credit command (topic ``ecash.commands``, key = MSISDN, JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: SchemaVersionField = SCHEMA_VERSION
    type: CommandType
    trace_number: Annotated[str, Field(pattern=TRACE_NUMBER_PATTERN, description="The idempotency key")]
    msisdn: Annotated[str, Field(pattern=MSISDN_PATTERN, description="Also the record key, as UTF-8")]
    amount: Annotated[Decimal, WithJsonSchema(AMOUNT_JSON_SCHEMA)]
    transfer_type_id: Annotated[str, Field(min_length=1, max_length=16)] | None = None
    account_type_id: Annotated[str, Field(min_length=1, max_length=16)] | None = None
    description: Annotated[str, Field(max_length=255)] | None = None
    expires_at: datetime | None = Field(
        None, description="Never start moving money after this instant (timezone required)"
    )
    metadata: Annotated[dict[str, Any], WithJsonSchema(METADATA_JSON_SCHEMA)] = Field(default_factory=dict)

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: int) -> int:
        return _schema_version_read(value)

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

    @field_serializer("metadata")
    def _ser_metadata(self, value: dict[str, Any]) -> dict[str, str]:
        return metadata_text(value)


# What the worker publishes is read by others, who must ignore fields they do not know (docs/contracts.md):
# so do the worker's own readers (`ecash-worker review`, `send`), and the published schemas are open.
PUBLISHED = ConfigDict(extra="ignore", frozen=True, json_schema_serialization_defaults_required=True)


class Result(BaseModel):
    """The one outcome of a command message (topic ``ecash.results``, key = MSISDN, or the trace number when
    the command had no usable MSISDN). ``type`` is absent when the command's type was not charge or credit;
    ``msisdn`` and ``amount`` are null when they were not valid."""

    model_config = PUBLISHED

    schema_version: PublishedVersionField = SCHEMA_VERSION
    event_id: str = Field(
        description="One per command message (and one per review decision): the same on a republish, "
        "a new one for a duplicate command"
    )
    trace_number: str = Field(description="The command's trace number: correlate by it")
    type: CommandType | None = Field(None, exclude_if=_is_none)
    msisdn: str | None = Field(description="null when the command had no valid MSISDN")
    amount: Annotated[
        Decimal | None,
        WithJsonSchema(
            {"type": ["string", "null"], "pattern": AMOUNT_JSON_SCHEMA["pattern"], "maxLength": 12}
        ),
    ] = Field(description="The command's amount as a decimal string; null when it was not a valid amount")
    outcome: Outcome
    response_code: str | None = None
    transaction_number: str | None = None
    trx_datetime: str | None = None
    resolved_by: ResolvedBy
    attempts: Annotated[int, Field(json_schema_extra=INT32)] = 0
    detail: str
    completed_at: datetime
    metadata: Annotated[dict[str, str], WithJsonSchema(METADATA_JSON_SCHEMA)] = Field(default_factory=dict)

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, value: object) -> dict[str, str]:
        return metadata_text(value)

    @field_serializer("amount")
    def _ser_amount(self, value: Decimal | None) -> str | None:
        return None if value is None else format_amount(value)


class Header(BaseModel):
    """One Kafka record header of the dead-lettered message."""

    model_config = PUBLISHED

    name: str
    value_b64: str = Field(description="The header's value, base64")


class DeadLetter(BaseModel):
    """An unparsable message (topic ``ecash.commands.dlq``): nothing lost, reason attached."""

    model_config = PUBLISHED

    schema_version: PublishedVersionField = SCHEMA_VERSION
    reason: str = Field(description="A label, a colon and a sentence: ``not_json: the message is not JSON``")
    topic: str
    partition: Annotated[int, Field(json_schema_extra=INT32)]
    offset: Annotated[int, Field(json_schema_extra=INT64)]
    key_b64: str | None
    value_b64: str | None
    headers: list[Header] = Field(default_factory=list)
    timestamp_ms: Annotated[int | None, Field(json_schema_extra=INT64)] = None
    dead_lettered_at: datetime

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, value: object) -> object:
        """``(name, value_b64)`` pairs too: how the worker builds them, and records before v1 hold them."""
        if isinstance(value, list | tuple):
            return [
                {"name": h[0], "value_b64": h[1]} if isinstance(h, list | tuple) and len(h) == 2 else h
                for h in value
            ]
        return value


class Attempt(BaseModel):
    """One call to the API made for a command, with its answer: the evidence."""

    model_config = PUBLISHED

    at: datetime
    operation: Literal["charge", "credit", "status"] = Field(title="AttemptOperation")
    # A CallClass value or a Status Inquiry AnswerKind (typed where written: pipeline/effects.py
    # ``AttemptClass``); a plain string here, so a reader takes a class it does not know yet.
    outcome_class: str
    response_code: str | None = None
    detail: str = ""


class ReviewRecord(BaseModel):
    """What an operator needs to settle an unresolved command (topic ``ecash.review``).

    Key: ``<trace number>:<source partition>:<source offset>`` (``review_item_key``), so two commands that
    share a trace number never share an item (records written before 2026-12 are keyed by trace number).
    A record with ``state = "closed"`` supersedes the open one (the topic is compacted)."""

    model_config = PUBLISHED

    schema_version: PublishedVersionField = SCHEMA_VERSION
    trace_number: str
    state: Literal["open", "closed"] = Field(title="ReviewState")
    command: Command = Field(description="The command as the worker read it (``ReviewedCommand`` in schemas)")
    source_partition: Annotated[int, Field(json_schema_extra=INT32)]
    source_offset: Annotated[int, Field(json_schema_extra=INT64)]
    attempts: list[Attempt]
    last_known_state: str
    opened_at: datetime
    closed_at: datetime | None = None
    closed_outcome: Outcome | None = Field(None, exclude_if=_is_none)  # absent while open
    closed_by: str | None = None
    close_reason: str | None = None

    @field_validator("command", mode="before")
    @classmethod
    def _known_command_fields(cls, value: object) -> object:
        """A reader ignores fields it does not know, in the record's command too (a later worker's)."""
        if isinstance(value, dict):
            return {key: item for key, item in value.items() if key in Command.model_fields}
        return value


class ReviewDecision(BaseModel):
    """An operator's verdict on an unresolved command (topic ``ecash.review.decisions``, key = MSISDN).

    It goes to the partition of the decisions topic with the number of the command's partition (the
    review record's ``source_partition``; the two topics are co-partitioned), so the worker owning that
    partition, the journal's only writer, applies it in order with the wallet's other commands, wherever
    the command arrived. It has a topic of its own so that Kafka ACLs can let operators, and only them,
    close reviews. ``ecash-worker review resolve`` sends it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: SchemaVersionField = SCHEMA_VERSION
    type: Literal["review_decision"] = Field(title="ReviewDecisionType")
    trace_number: Annotated[str, Field(pattern=TRACE_NUMBER_PATTERN)]
    msisdn: Annotated[str, Field(pattern=MSISDN_PATTERN)]
    outcome: Literal["succeeded", "failed"] = Field(title="DecisionOutcome")
    decided_by: Annotated[str, Field(min_length=1, max_length=100)]
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    transaction_number: Annotated[str, Field(max_length=64)] | None = None
    source_partition: Annotated[int, Field(ge=0, json_schema_extra=INT32)] | None = Field(
        None, description="The review item's command partition (``review resolve`` sets it)"
    )
    source_offset: Annotated[int, Field(ge=0, json_schema_extra=INT64)] | None = Field(
        None, description="The review item's command offset: the decision applies to that command only"
    )

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: int) -> int:
        return _schema_version_read(value)


def review_item_key(trace_number: str, partition: int, offset: int) -> str:
    return f"{trace_number}:{partition}:{offset}"


def event_id_for(trace_number: str, partition: int, offset: int) -> str:
    """One result per command message: republishing it after a crash gives the same id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{trace_number}:{partition}:{offset}"))


def decision_event_id(trace_number: str, partition: int, offset: int) -> str:
    """The result a review decision publishes (its message on the decisions topic): never a command's id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{trace_number}:decision:{partition}:{offset}"))


READ_BY_THE_WORKER = frozenset({"command", "review_decision"})
"""Contracts others write and the worker reads: closed (unknown fields refused), validation-mode schema.
The others are published by the worker and read by others: open, serialization-mode schema."""

CONTRACTS: dict[str, type[BaseModel]] = {
    "command": Command,
    "result": Result,
    "dead_letter": DeadLetter,
    "review_record": ReviewRecord,
    "review_decision": ReviewDecision,
}
