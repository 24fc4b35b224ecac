"""The record key rule: a command's key is its MSISDN as UTF-8; anything else is named, never echoed raw."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.contracts import Command
from worker.pipeline.key_rule import (
    KEY_MISMATCH,
    KEY_MISSING,
    KEY_REASON,
    RULES,
    SHOWN_KEY_CHARS,
    java_partition,
    key_problem,
    key_rejection,
)
from worker.pipeline.results import rejection_result

MSISDN = "08131234567"
DETAIL_MAX_CHARS = 600  # the expected-key sentence, the MSISDN and a shown key at its bound, escaped

deterministic = settings(
    max_examples=3000,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_the_msisdn_as_utf8_is_the_right_key() -> None:
    assert key_problem(MSISDN.encode(), MSISDN) is None


@pytest.mark.parametrize("key", [None, b""])
def test_no_key_or_an_empty_key_is_missing(key: bytes | None) -> None:
    problem = key_problem(key, MSISDN)
    assert problem is not None
    rule, detail = problem
    assert rule == KEY_MISSING
    assert detail.startswith("key: ")
    assert detail.endswith("[key_missing]")
    assert f'MSISDN "{MSISDN}" as UTF-8 bytes' in detail
    assert "murmur2" in detail


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        (b"08131234568", '"08131234568"'),  # another wallet
        (b"order-8812", '"order-8812"'),
        (b" 08131234567", '" 08131234567"'),  # not exactly: no trimming
        (b"08131234567\n", r"'08131234567\n'"),
        ("".join(chr(0xFF10 + int(d)) for d in MSISDN).encode(), r"'\uff10\uff18"),  # fullwidth digits
        (b'say "hi"', "'say \"hi\"'"),
    ],
)
def test_another_text_is_a_mismatch_and_is_shown_escaped(key: bytes, shown: str) -> None:
    problem = key_problem(key, MSISDN)
    assert problem is not None
    rule, detail = problem
    assert rule == KEY_MISMATCH
    assert f"the record's key is {shown}" in detail
    assert detail.endswith("[key_mismatch]")


def test_utf16_is_not_utf8() -> None:
    problem = key_problem(MSISDN.encode("utf-16"), MSISDN)
    assert problem is not None
    assert problem[0] == KEY_MISMATCH
    assert "not UTF-8 (24 bytes: b'\\xff\\xfe0\\x00" in problem[1]


def test_a_long_key_is_cut_and_its_length_told() -> None:
    key = b"9" * 1_000_000
    rule, detail = key_problem(key, MSISDN) or ("", "")
    assert rule == KEY_MISMATCH
    assert '"' + "9" * SHOWN_KEY_CHARS + '"... (1000000 characters)' in detail
    assert len(detail) < DETAIL_MAX_CHARS
    rule, detail = key_problem(b"\xff" * 1_000_000, MSISDN) or ("", "")
    assert "1000000 bytes" in detail
    assert len(detail) < DETAIL_MAX_CHARS


@given(key=st.one_of(st.none(), st.binary(max_size=256)), msisdn=st.text(max_size=64))
@deterministic
def test_never_raises_and_every_detail_is_bounded_printable_ascii(key: bytes | None, msisdn: str) -> None:
    problem = key_problem(key, msisdn)
    if problem is None:
        assert key is not None
        assert key.decode("utf-8") == msisdn
        assert key  # an empty key is missing, even for an empty "MSISDN"
        return
    rule, detail = problem
    assert rule in RULES
    assert detail.isascii()
    assert detail.isprintable()
    assert len(detail) < DETAIL_MAX_CHARS


@given(text=st.text(max_size=80))
@deterministic
def test_a_text_key_is_right_exactly_when_it_is_the_msisdn(text: str) -> None:
    problem = key_problem(text.encode("utf-8"), MSISDN)
    assert (problem is None) == (text == MSISDN)


def test_a_rejection_for_the_processor_builds_a_rejected_result() -> None:
    command = Command.model_validate(
        {"type": "charge", "trace_number": "T1", "msisdn": MSISDN, "amount": "1500.50", "metadata": {"a": 1}}
    )
    assert key_rejection(command, MSISDN.encode()) is None
    rejection = key_rejection(command, b"08999")
    assert rejection is not None
    assert (rejection.reason, rejection.field, rejection.rule) == (KEY_REASON, "key", KEY_MISMATCH)
    result = rejection_result(rejection, partition=2, offset=9, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert result.outcome.value == "rejected"
    assert result.resolved_by.value == "response"
    assert (result.trace_number, result.msisdn, str(result.amount)) == ("T1", MSISDN, "1500.50")
    assert result.type is not None
    assert result.type.value == "charge"
    assert result.metadata == {"a": "1"}  # metadata values are strings in the contract: others as JSON text
    assert result.detail.startswith("key: the record key must be the command's MSISDN")
    assert '"08999" [key_mismatch]; nothing was sent to the API' in result.detail


@pytest.mark.parametrize(
    ("msisdn", "partition"),
    # from Kafka's own BuiltInPartitioner.partitionForKey (examples/partitioners/java), 12 partitions
    [("081560457", 8), ("0894778972", 3), ("08970833304", 10)],
)
def test_java_partition_is_the_java_clients(msisdn: str, partition: int) -> None:
    assert java_partition(msisdn.encode(), 12) == partition
