"""From raw Kafka bytes to a command, a rejection (identifiable but invalid), or a dead letter. Pure.

The line between the last two: if the message tells us its trace number, its producer is waiting for an
answer on the results topic, so it gets a ``rejected`` result. Otherwise nobody can be answered, and the
original bytes go to the dead-letter topic with the reason.

``parse_command`` is total: whatever the bytes, it returns exactly one of ``Parsed``, ``Decision``,
``Rejection`` or ``DeadLetterReason`` and never raises (a property test feeds it arbitrary input), so no
message can stop the consumer loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from worker.contracts import MSISDN_PATTERN, Command, ReviewDecision
from worker.events import DeadLetterLabel, RejectReason
from worker.pipeline.strict_json import Document, Duplicate, Unreadable, read

__all__ = [
    "CONFLUENT_HEADER_BYTES",
    "CONFLUENT_MAGIC",
    "DEAD_LETTER_REASONS",
    "FRAMING_SETTING",
    "IDENTIFIABLE_TRACE",
    "DeadLetterReason",
    "Decision",
    "Framing",
    "Intake",
    "Parsed",
    "Rejection",
    "confluent_schema_id",
    "parse_command",
    "unframe",
]

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
    reason: RejectReason  # "invalid" here; key_rule.py gives "key_not_msisdn"
    detail: str  # a sentence for the producer, naming the field and the rule
    field: str = "command"  # the first field at fault ("amount", "metadata.order_id")
    rule: str = "invalid"  # the rule it broke ("amount_exponent", "unknown_field", "duplicate_key")


@dataclass(frozen=True)
class DeadLetterReason:
    reason: DeadLetterLabel  # parse_command gives those in DEAD_LETTER_REASONS
    detail: str


Intake = Parsed | Decision | Rejection | DeadLetterReason


DEAD_LETTER_REASONS = (
    "not_json",
    "not_a_command",
    "no_trace_number",
    "oversize",
    "too_deep",
    "number_too_large",
    "duplicate_keys",
    "invalid_review_decision",
    "internal_error",
)
"""Every label ``parse_command`` can give (the processor adds ``review_decision_not_applicable``).

``internal_error`` is a last resort: no input is known to reach it (the property test asserts so)."""

_SHOWN_NAME_CHARS = 64
_SHOWN_ERRORS = 5


Framing = Literal["plain", "confluent", "auto"]
FRAMING_SETTING = "ECASH_COMMANDS_FRAMING"
CONFLUENT_MAGIC = b"\x00"
CONFLUENT_HEADER_BYTES = 5  # the magic byte 0x00, then the schema id: 4 bytes, big-endian


def confluent_schema_id(value: bytes) -> int | None:
    """The schema id of a message in the Confluent Schema Registry wire format (0x00, a 4-byte schema id,
    then the payload), or None. JSON never starts with 0x00 (strict_json.py reads UTF-8, no NUL), so a
    plain command is never mistaken for a framed one."""
    if len(value) < CONFLUENT_HEADER_BYTES or value[:1] != CONFLUENT_MAGIC:
        return None
    return int.from_bytes(value[1:CONFLUENT_HEADER_BYTES], "big")


def unframe(value: bytes | None, framing: Framing) -> bytes | DeadLetterReason | None:
    """The JSON payload of a command message as ``framing`` reads it (``ECASH_COMMANDS_FRAMING``):

    - ``plain``: the value is the JSON; a framed one is a dead letter (``not_json``) naming the setting;
    - ``confluent``: the value must be framed, the frame is dropped; an unframed one is a dead letter;
    - ``auto``: framed or not, each message as it comes.

    The schema id is not looked up in any registry: the payload is read against the worker's own contract
    like any command."""
    if value is None:
        return None
    schema_id = confluent_schema_id(value)
    if schema_id is not None:
        if framing == "plain":
            return DeadLetterReason(
                "not_json",
                f"the message is not JSON: it looks framed in the Confluent Schema Registry wire format "
                f"(byte 0x00, then schema id {schema_id}); set {FRAMING_SETTING}=confluent or auto to "
                "accept such commands",
            )
        return value[CONFLUENT_HEADER_BYTES:]
    if framing == "confluent":
        return DeadLetterReason(
            "not_json",
            f"the message is not in the Confluent Schema Registry wire format (byte 0x00, a 4-byte schema "
            f"id, then JSON), which {FRAMING_SETTING}=confluent requires; set it to auto to accept plain "
            "JSON as well",
        )
    return value


def parse_command(value: bytes | None, *, max_bytes: int, framing: Framing | None = "plain") -> Intake:
    """``framing``: how command messages are framed (``unframe``); None reads the bytes as they are (the
    review decisions topic, written by ``ecash-worker review resolve`` only)."""
    try:
        if (
            framing is not None and value is not None and len(value) <= max_bytes
        ):  # a larger one is oversize, framed or not
            unframed = unframe(value, framing)
            if isinstance(unframed, DeadLetterReason):
                return unframed
            value = unframed
        return _parse(value, max_bytes)
    except Exception as exc:  # noqa: BLE001 - a bug here must cost one message, never the consumer loop
        return DeadLetterReason(
            "internal_error", f"reading the message failed ({type(exc).__name__}); please report it"
        )


def _parse(value: bytes | None, max_bytes: int) -> Intake:
    if value is None:
        return DeadLetterReason("not_a_command", "the message has no value (a tombstone?)")
    if len(value) > max_bytes:
        return DeadLetterReason(
            "oversize", f"the message is {len(value)} bytes, over the {max_bytes}-byte limit"
        )
    document = read(value)
    if isinstance(document, Unreadable):
        return DeadLetterReason(document.reason, document.detail)
    data = document.data
    if not isinstance(data, dict):
        return DeadLetterReason(
            "not_a_command", f"the message is JSON but not an object ({_json_type(data)})"
        )
    if data.get("type") == "review_decision":
        return _decision(data, document.duplicates)
    return _command(data, document)


def _decision(data: dict[str, Any], duplicates: list[Duplicate]) -> Intake:
    if duplicates:
        return DeadLetterReason(
            "duplicate_keys", "the review decision repeats a key: " + _duplicates_text(duplicates)
        )
    try:
        return Decision(ReviewDecision.model_validate(data))
    except ValidationError as exc:
        return DeadLetterReason(
            "invalid_review_decision", "the review decision is invalid: " + _summarize(exc)
        )


def _command(data: dict[str, Any], document: Document) -> Intake:
    if any(d.path == "trace_number" and not d.same_values for d in document.duplicates):
        return DeadLetterReason(
            "duplicate_keys",
            "trace_number is given more than once with different values, so no result can be addressed",
        )
    trace = data.get("trace_number")
    if not isinstance(trace, str) or not IDENTIFIABLE_TRACE.match(trace):
        return DeadLetterReason(
            "no_trace_number", "the message has no usable trace_number, so no result can be addressed"
        )
    msisdn = data.get("msisdn")
    usable_msisdn = msisdn if isinstance(msisdn, str) and _MSISDN.fullmatch(msisdn) else None
    if document.duplicates:
        first = document.duplicates[0]
        return Rejection(
            trace_number=trace,
            msisdn=usable_msisdn,
            raw=data,
            reason="invalid",
            detail="the command is ambiguous: " + _duplicates_text(document.duplicates),
            field=_shown(first.path),
            rule="duplicate_key",
        )
    try:
        return Parsed(Command.model_validate(data))
    except ValidationError as exc:
        error = exc.errors()[0]
        return Rejection(
            trace_number=trace,
            msisdn=usable_msisdn,
            raw=data,
            reason="invalid",
            detail="the command is invalid: " + _summarize(exc),
            field=_location(error["loc"]),
            rule=_rule(error["type"]),
        )


def _duplicates_text(duplicates: list[Duplicate]) -> str:
    shown = [f"{_shown(d.path)} appears more than once [duplicate_key]" for d in duplicates[:_SHOWN_ERRORS]]
    if len(duplicates) > _SHOWN_ERRORS:
        shown.append(f"and {len(duplicates) - _SHOWN_ERRORS} more")
    return "; ".join(shown)


def _summarize(exc: ValidationError) -> str:
    errors = exc.errors()
    parts = [
        f"{_location(err['loc'])}: {_message(err['type'], err['msg'])} [{_rule(err['type'])}]"
        for err in errors[:_SHOWN_ERRORS]
    ]
    if len(errors) > _SHOWN_ERRORS:
        parts.append(f"and {len(errors) - _SHOWN_ERRORS} more")
    return "; ".join(parts)


def _rule(error_type: str) -> str:
    return "unknown_field" if error_type == "extra_forbidden" else error_type


def _message(error_type: str, message: str) -> str:
    if error_type == "extra_forbidden":
        return "unknown field (a command has only " + ", ".join(Command.model_fields) + ")"
    return message


def _location(loc: tuple[int | str, ...]) -> str:
    return _shown(".".join(str(part) for part in loc)) if loc else "command"


def _shown(name: str) -> str:
    """A field name as it can be quoted back: bounded, and escaped when it is not plain printable ASCII."""
    if not name:
        return '""'
    clipped = name[:_SHOWN_NAME_CHARS]
    shown = clipped if clipped.isascii() and clipped.isprintable() else ascii(clipped)
    return shown + ("..." if len(name) > _SHOWN_NAME_CHARS else "")


def _json_type(data: object) -> str:
    names = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return "null" if data is None else names.get(type(data), type(data).__name__)
