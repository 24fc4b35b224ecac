"""What happens to every kind of bad message: dead letter (nobody to answer) or rejected (someone waits)."""

from __future__ import annotations

import orjson
import pytest

from worker.pipeline.intake import DeadLetterReason, Parsed, Rejection, parse_command

GOOD = {"type": "credit", "trace_number": "T100", "msisdn": "08131234567", "amount": 5000}


def parse(value: bytes | None) -> object:
    return parse_command(value, max_bytes=2048)


def test_a_good_command_parses() -> None:
    result = parse(orjson.dumps(GOOD))
    assert isinstance(result, Parsed)
    assert result.command.trace_number == "T100"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not json{", "not_json"),
        (b"[1,2,3]", "not_a_command"),
        (b'"a string"', "not_a_command"),
        (None, "not_a_command"),
        (orjson.dumps({"type": "charge", "amount": 1}), "no_trace_number"),
        (orjson.dumps({**GOOD, "trace_number": 12345}), "no_trace_number"),
        (b"{" + b" " * 5000 + b"}", "oversize"),
    ],
)
def test_unaddressable_messages_go_to_the_dead_letter_topic(value: bytes | None, reason: str) -> None:
    result = parse(value)
    assert isinstance(result, DeadLetterReason)
    assert result.reason == reason
    assert result.detail


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ({"amount": -5}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"type": "refund"}, "type"),
        ({"msisdn": 81234}, "msisdn"),
        ({"trace_number": "has-dash"}, "trace_number"),
    ],
)
def test_identifiable_invalid_commands_are_rejected_with_the_reason(
    patch: dict[str, object], words: str
) -> None:
    result = parse(orjson.dumps({**GOOD, **patch}))
    assert isinstance(result, Rejection)
    assert result.trace_number == patch.get("trace_number", "T100")
    assert words in result.detail


def test_rejection_keeps_a_valid_msisdn_for_the_result_key() -> None:
    result = parse(orjson.dumps({**GOOD, "amount": -1}))
    assert isinstance(result, Rejection)
    assert result.msisdn == "08131234567"
