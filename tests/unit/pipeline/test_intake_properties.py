"""Intake is total: whatever the bytes, ``parse_command`` answers with exactly one outcome and never raises,
and every outcome can be turned into the message the worker publishes (a result or a dead letter).

Deterministic for CI (``derandomize=True``, no example database); 10,500 examples in all (``EXAMPLES``),
about 20 s on a shared 2-core machine.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.amount_rules import MAX_AMOUNT
from worker.contracts import Command, format_amount
from worker.core.fingerprint import fingerprint
from worker.pipeline.dead_letters import dead_letter
from worker.pipeline.intake import (
    DEAD_LETTER_REASONS,
    IDENTIFIABLE_TRACE,
    DeadLetterReason,
    Decision,
    Intake,
    Parsed,
    Rejection,
    parse_command,
)
from worker.pipeline.results import rejection_result

MAX_BYTES = 16_384
NOW = datetime(2026, 1, 1, tzinfo=UTC)
COMMAND_FIELDS = list(Command.model_fields)
OUTCOMES = (Parsed, Decision, Rejection, DeadLetterReason)
EXAMPLES = {"bytes": 5000, "json_values": 1500, "command_shaped": 2000, "round_trip": 1000, "amounts": 1000}


def deterministic(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


class _Source:
    """Where a message came from, as the dead-letter builder reads it."""

    def __init__(self, value: bytes | None) -> None:
        self.partition = 3
        self.offset = 17
        self.timestamp_ms: int | None = 1_700_000_000_000
        self.key: bytes | None = b"08131234567"
        self.value = value
        self.headers: list[tuple[str, bytes]] = []


def answer(value: bytes | None) -> Intake:
    """Parse, check the outcome is one of the four and well formed, and build what would be published."""
    outcome = parse_command(value, max_bytes=MAX_BYTES)
    assert sum(isinstance(outcome, kind) for kind in OUTCOMES) == 1
    if isinstance(outcome, Parsed):
        command = outcome.command
        assert_amount_within_the_rules(command.amount)
        assert fingerprint(command)
        if command.expires_at is not None:  # what the processor does with it
            assert command.expires_at.astimezone(UTC).isoformat()
            assert isinstance(command.expires_at <= NOW, bool)
        command.model_dump_json()
    elif isinstance(outcome, Rejection):
        assert IDENTIFIABLE_TRACE.match(outcome.trace_number)
        assert outcome.field
        assert outcome.rule
        assert outcome.rule in outcome.detail
        assert len(outcome.detail) < 4000
        rejection_result(outcome, partition=3, offset=17, now=NOW).model_dump_json()
    elif isinstance(outcome, DeadLetterReason):
        assert outcome.reason in DEAD_LETTER_REASONS
        assert outcome.reason != "internal_error", outcome.detail  # the guard is never what saved us
        assert outcome.detail
        dead_letter(_Source(value), topic="ecash.commands", reason=outcome, now=NOW).model_dump_json()
    else:
        outcome.decision.model_dump_json()
    return outcome


def assert_amount_within_the_rules(amount: Decimal) -> None:
    assert amount.is_finite()
    assert Decimal(0) < amount <= MAX_AMOUNT
    assert amount == amount.quantize(Decimal("0.01"))
    assert len(format_amount(amount)) <= 12


# --- strategies: JSON text built by hand, so that it can hold what no encoder writes ----------------------


def _string(text: str, ascii_only: bool) -> str:
    return json.dumps(text, ensure_ascii=ascii_only)


SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)
ODD_CHARACTER = st.sampled_from("\x00\x7f\u0085\u200b\u202e\ufeff\uffff\U0001f4b8\u0661")
ODD_TEXT = st.text(alphabet=st.characters() | ODD_CHARACTER, max_size=40)
LONE_SURROGATE = st.builds(_string, st.lists(SURROGATE, min_size=1, max_size=2).map("".join), st.just(True))
DIGITS = "0123456789"
ALPHANUMERIC = DIGITS + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _number(negative: bool, whole: int, fraction: int | None, exponent: int | None) -> str:
    text = ("-" if negative else "") + str(whole)
    if fraction is not None:
        text += f".{fraction}"
    return text if exponent is None else f"{text}e{exponent}"


# Number literals as JSON allows them, from 0 to 60 digits, with fractions and exponents up to e+-9999
NUMBER_LITERAL = st.builds(
    _number,
    st.booleans(),
    st.integers(0, 10**60),
    st.none() | st.integers(0, 10**60),
    st.none() | st.integers(-9999, 9999),
)
_LARGE_FRAGMENTS = {  # built on demand: a strategy holding them would print 20 kB in every warning
    "digits": lambda: "1" * 5000,
    "digit_string": lambda: '"' + "9" * 5000 + '"',
    "nested_40": lambda: "[" * 40 + "]" * 40,
    "nested_2000": lambda: "[" * 2000 + "]" * 2000,
    "objects_33": lambda: '{"a":' * 33 + "1" + "}" * 33,
    "oversize_string": lambda: '"' + "x" * 20_000 + '"',
}
ODD_FRAGMENT = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", '"\\ud800"', "1e400", "-0", "18446744073709551616", "true", "{}", "[]"]
) | st.sampled_from(sorted(_LARGE_FRAGMENTS)).map(lambda name: _LARGE_FRAGMENTS[name]())


SCALAR = st.one_of(
    st.just("null"),
    st.booleans().map(json.dumps),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.builds(_string, ODD_TEXT, st.booleans()),
    NUMBER_LITERAL,
    NUMBER_LITERAL.map(json.dumps),
    ODD_FRAGMENT,
    LONE_SURROGATE,
)
KEY = st.one_of(st.sampled_from([*COMMAND_FIELDS, "order_id", "a"]), ODD_TEXT)


def _object(pairs: list[tuple[str, str]], ascii_only: bool = True) -> str:
    return "{" + ",".join(f"{_string(k, ascii_only)}:{v}" for k, v in pairs) + "}"


FRAGMENT = st.recursive(
    SCALAR,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(KEY, children), max_size=4).map(_object),
    ),
    max_leaves=8,
)

VALID_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "schema_version": st.just(1),
    "type": st.sampled_from(["charge", "credit"]),
    "trace_number": st.text(ALPHANUMERIC, min_size=1, max_size=32),
    "msisdn": st.text(DIGITS, min_size=9, max_size=15),
    "amount": st.one_of(
        st.integers(1, 999_999_999),
        st.decimals(Decimal("0.01"), MAX_AMOUNT, places=2).map(format_amount),
    ),
    "transfer_type_id": st.text(DIGITS, min_size=1, max_size=16),
    "account_type_id": st.text(DIGITS, min_size=1, max_size=16),
    "description": st.text(max_size=255),
    "expires_at": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    "metadata": st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
}
MANDATORY = ("type", "trace_number", "msisdn", "amount")
ODD_EXPIRES = st.builds(
    lambda moment, offset: json.dumps(moment.replace(tzinfo=timezone(offset)).isoformat()),
    st.datetimes(),
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)),
)


@st.composite
def command_shaped(draw: st.DrawFn) -> bytes:
    """A command's keys, each value valid or hostile, some keys missing, repeated, or unknown."""
    pairs: list[tuple[str, str]] = []
    for name in COMMAND_FIELDS:
        if name not in MANDATORY and draw(st.booleans()):
            continue
        if name in MANDATORY and draw(st.integers(0, 20)) == 0:
            continue
        if name == "expires_at" and draw(st.booleans()):
            pairs.append((name, draw(ODD_EXPIRES)))
        elif draw(st.integers(0, 5)) == 0:
            pairs.append((name, draw(FRAGMENT)))
        else:
            pairs.append((name, json.dumps(draw(VALID_VALUES[name]), ensure_ascii=False)))
    if pairs and draw(st.integers(0, 5)) == 0:
        repeated, value = draw(st.sampled_from(pairs))
        pairs.insert(draw(st.integers(0, len(pairs))), (repeated, draw(st.sampled_from([value, "1"]))))
    if draw(st.integers(0, 5)) == 0:
        pairs.append((draw(KEY), draw(FRAGMENT)))
    text = _object(draw(st.permutations(pairs)), ascii_only=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def valid_command(draw: st.DrawFn) -> Command:
    fields = {name: draw(VALID_VALUES[name]) for name in MANDATORY}
    for name in COMMAND_FIELDS:
        if name not in MANDATORY and draw(st.booleans()):
            fields[name] = draw(VALID_VALUES[name])
    return Command.model_validate(fields)


# --- the properties ----------------------------------------------------------------------------------------


@deterministic(EXAMPLES["bytes"])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(value: bytes) -> None:
    answer(value)


@deterministic(EXAMPLES["json_values"])
@given(FRAGMENT.map(lambda text: text.encode("utf-8", "surrogatepass")))
def test_arbitrary_json_values_never_raise(value: bytes) -> None:
    answer(value)


@deterministic(EXAMPLES["command_shaped"])
@given(command_shaped())
def test_command_shaped_messages_with_hostile_fields_never_raise(value: bytes) -> None:
    outcome = answer(value)
    if isinstance(outcome, Parsed):
        assert b"trace_number" in value


@deterministic(EXAMPLES["round_trip"])
@given(valid_command(), st.booleans())
def test_a_valid_command_round_trips(command: Command, exclude_none: bool) -> None:
    value = command.model_dump_json(exclude_none=exclude_none).encode()
    outcome = answer(value)
    assert isinstance(outcome, Parsed)
    assert outcome.command == command


@deterministic(EXAMPLES["amounts"])
@given(
    st.one_of(st.text(max_size=30), st.integers(), st.floats(allow_nan=False), st.none(), st.booleans()),
    st.one_of(NUMBER_LITERAL, ODD_FRAGMENT),
)
def test_any_amount_that_parses_is_within_the_rules(value: Any, literal: str) -> None:
    body = '{"type":"charge","trace_number":"T1","msisdn":"08131234567","amount":'
    for text in (json.dumps(value), literal):
        outcome = answer((body + text + "}").encode())
        assert not isinstance(outcome, Decision)
        if isinstance(outcome, Rejection):
            assert outcome.field == "amount"


def test_ci_runs_at_least_10000_examples() -> None:
    assert sum(EXAMPLES.values()) >= 10_000
