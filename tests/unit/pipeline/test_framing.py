"""Commands in the Confluent Schema Registry wire format (``ECASH_COMMANDS_FRAMING``): 0x00, a 4-byte
big-endian schema id, then the JSON. The schema id is not looked up; the payload is the command."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.pipeline.intake import (
    DeadLetterReason,
    Decision,
    Framing,
    Parsed,
    Rejection,
    confluent_schema_id,
    parse_command,
    unframe,
)

MAX_BYTES = 16_384
CASES = settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FRAMINGS: list[Framing] = ["plain", "confluent", "auto"]
COMMAND = {"type": "charge", "trace_number": "T1", "msisdn": "08131234567", "amount": "100000"}

schema_ids = st.integers(min_value=0, max_value=2**32 - 1)
traces = st.text(
    alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=1, max_size=32
)
amounts = st.sampled_from(["1", "100000", "1500.50", "-5", "1e5", "abc"])
commands = st.builds(
    lambda trace, amount, kind: json.dumps(
        {"type": kind, "trace_number": trace, "msisdn": "08131234567", "amount": amount}
    ).encode(),
    traces,
    amounts,
    st.sampled_from(["charge", "credit", "refund", "review_decision"]),
)


def framed(payload: bytes, schema_id: int) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + payload


@CASES
@given(commands, schema_ids, st.sampled_from(["confluent", "auto"]))
def test_a_framed_command_reads_exactly_as_its_payload(
    payload: bytes, schema_id: int, framing: Framing
) -> None:
    assert confluent_schema_id(framed(payload, schema_id)) == schema_id
    assert unframe(framed(payload, schema_id), framing) == payload
    assert parse_command(framed(payload, schema_id), max_bytes=MAX_BYTES, framing=framing) == parse_command(
        payload, max_bytes=MAX_BYTES
    )


@CASES
@given(commands)
def test_plain_json_is_never_taken_for_framed_and_auto_reads_it_as_plain(payload: bytes) -> None:
    assert confluent_schema_id(payload) is None
    assert parse_command(payload, max_bytes=MAX_BYTES, framing="auto") == parse_command(
        payload, max_bytes=MAX_BYTES
    )


@CASES
@given(commands, schema_ids)
def test_in_plain_a_framed_command_is_a_dead_letter_that_names_the_setting(
    payload: bytes, schema_id: int
) -> None:
    outcome = parse_command(framed(payload, schema_id), max_bytes=MAX_BYTES)
    assert isinstance(outcome, DeadLetterReason)
    assert outcome.reason == "not_json"
    assert "Confluent" in outcome.detail
    assert "ECASH_COMMANDS_FRAMING" in outcome.detail
    assert f"schema id {schema_id}" in outcome.detail


@CASES
@given(commands)
def test_in_confluent_an_unframed_command_is_a_dead_letter_that_names_the_setting(payload: bytes) -> None:
    outcome = parse_command(payload, max_bytes=MAX_BYTES, framing="confluent")
    assert isinstance(outcome, DeadLetterReason)
    assert outcome.reason == "not_json"
    assert "ECASH_COMMANDS_FRAMING=confluent" in outcome.detail


@settings(max_examples=1500, derandomize=True, database=None, deadline=None)
@given(
    st.one_of(st.binary(max_size=64), st.binary(max_size=64).map(lambda b: b"\x00" + b)),
    st.sampled_from(FRAMINGS),
)
def test_whatever_the_bytes_and_the_framing_intake_answers_and_never_raises(
    value: bytes, framing: Framing
) -> None:
    outcome = parse_command(value, max_bytes=MAX_BYTES, framing=framing)
    assert isinstance(outcome, Parsed | Decision | Rejection | DeadLetterReason)
    if isinstance(outcome, DeadLetterReason):
        assert outcome.reason != "internal_error"


@pytest.mark.parametrize("framing", FRAMINGS)
def test_the_size_limit_counts_the_frame(framing: Framing) -> None:
    payload = json.dumps({**COMMAND, "description": "x" * 200}).encode()
    value = framed(payload, 7)
    outcome = parse_command(value, max_bytes=len(value) - 1, framing=framing)
    assert isinstance(outcome, DeadLetterReason)
    assert outcome.reason == "oversize"
    assert isinstance(parse_command(value, max_bytes=len(value), framing="auto"), Parsed)


def test_short_or_empty_values_and_tombstones() -> None:
    for framing in FRAMINGS:
        assert isinstance(parse_command(None, max_bytes=MAX_BYTES, framing=framing), DeadLetterReason)
        assert isinstance(parse_command(b"\x00\x00", max_bytes=MAX_BYTES, framing=framing), DeadLetterReason)
    empty = parse_command(framed(b"", 1), max_bytes=MAX_BYTES, framing="auto")
    assert isinstance(empty, DeadLetterReason)
    assert empty.reason == "not_json"


def test_a_framed_review_decision_on_the_decisions_topic_is_read_as_it_is() -> None:
    decision = json.dumps({"type": "review_decision"}).encode()
    outcome = parse_command(framed(decision, 1), max_bytes=MAX_BYTES, framing=None)
    assert isinstance(outcome, DeadLetterReason)
    assert "ECASH_COMMANDS_FRAMING" not in outcome.detail
