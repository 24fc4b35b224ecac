"""From raw Kafka bytes to a command, a rejection (identifiable but invalid), or a dead letter. Pure.

The line between the last two: if the message tells us its trace number, its producer is waiting for an
answer on the results topic, so it gets a ``rejected`` result. Otherwise nobody can be answered, and the
original bytes go to the dead-letter topic with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from worker.contracts import MSISDN_PATTERN, Command, ReviewDecision

IDENTIFIABLE_TRACE = re.compile(r"^[\x21-\x7e]{1,64}$")
_MSISDN = re.compile(MSISDN_PATTERN)


@dataclass(frozen=True)
class Parsed:
    command: Command


@dataclass(frozen=True)
class Decision:
    decision: ReviewDecision


@dataclass(frozen=True)
class Rejection:
    trace_number: str
    msisdn: str | None
    raw: dict[str, Any]
    reason: str  # a bounded label: invalid
    detail: str  # a sentence for the producer


@dataclass(frozen=True)
class DeadLetterReason:
    reason: str  # a bounded label: oversize | not_json | not_a_command | no_trace_number
    detail: str


Intake = Parsed | Decision | Rejection | DeadLetterReason


def parse_command(value: bytes | None, *, max_bytes: int) -> Intake:
    if value is None:
        return DeadLetterReason("not_a_command", "the message has no value (a tombstone?)")
    if len(value) > max_bytes:
        return DeadLetterReason(
            "oversize", f"the message is {len(value)} bytes, over the {max_bytes}-byte limit"
        )
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return DeadLetterReason("not_json", f"the message is not JSON: {exc}")
    if not isinstance(data, dict):
        return DeadLetterReason(
            "not_a_command", f"the message is JSON but not an object ({type(data).__name__})"
        )
    if data.get("type") == "review_decision":
        try:
            return Decision(ReviewDecision.model_validate(data))
        except ValidationError as exc:
            return DeadLetterReason(
                "invalid_review_decision", "the review decision is invalid: " + _summarize(exc)
            )
    trace = data.get("trace_number")
    if not isinstance(trace, str) or not IDENTIFIABLE_TRACE.match(trace):
        return DeadLetterReason(
            "no_trace_number", "the message has no usable trace_number, so no result can be addressed"
        )
    try:
        return Parsed(Command.model_validate(data))
    except ValidationError as exc:
        msisdn = data.get("msisdn")
        return Rejection(
            trace_number=trace,
            msisdn=msisdn if isinstance(msisdn, str) and _MSISDN.match(msisdn) else None,
            raw=data,
            reason="invalid",
            detail="the command is invalid: " + _summarize(exc),
        )


def _summarize(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "command"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - 5
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
