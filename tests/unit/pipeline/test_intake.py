"""What happens to every kind of bad message: dead letter (nobody to answer) or rejected (someone waits)."""

from __future__ import annotations

import orjson
import pytest

from worker.pipeline.intake import DeadLetterReason, Parsed, Rejection, parse_command

GOOD = {"type": "credit", "trace_number": "T100", "msisdn": "08131234567", "amount": 5000}


def parse(value: bytes | None, max_bytes: int = 2048) -> object:
    return parse_command(value, max_bytes=max_bytes)


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


POISON = {"type": "charge", "trace_number": "P1", "msisdn": "08131234567"}


@pytest.mark.parametrize(
    ("amount", "rule"),
    [
        ("1e400", "amount_exponent"),
        ("1e30", "amount_exponent"),
        ("123456789012345678901234567890", "amount_too_long"),
        (123456789012345678901234567890, "amount_too_large"),
        ("NaN", "amount_not_finite"),
        ("Infinity", "amount_not_finite"),
        (1500.5, "amount_float"),
        ("-5", "amount_sign"),
    ],
)
def test_the_poison_amounts_of_issue_13_are_rejected_naming_field_and_rule(amount: object, rule: str) -> None:
    result = parse(orjson.dumps({**POISON, "amount": amount}) if not isinstance(amount, int) else raw(amount))
    assert isinstance(result, Rejection)
    assert (result.trace_number, result.field, result.rule) == ("P1", "amount", rule)
    assert "amount: amount " in result.detail
    assert f"[{rule}]" in result.detail


def raw(amount: int) -> bytes:
    # orjson cannot write an integer above 2**64; a producer can
    return b'{"type":"charge","trace_number":"P1","msisdn":"08131234567","amount":%d}' % amount


def test_a_duplicated_key_is_rejected_naming_it_at_any_depth() -> None:
    top = parse(b'{"type":"charge","trace_number":"T1","msisdn":"08131234567","amount":"5","amount":"500"}')
    assert isinstance(top, Rejection)
    assert (top.field, top.rule) == ("amount", "duplicate_key")
    assert "amount appears more than once" in top.detail
    nested = parse(
        b'{"type":"charge","trace_number":"T1","msisdn":"08131234567","amount":"5",'
        b'"metadata":{"order":{"id":1,"id":2}}}'
    )
    assert isinstance(nested, Rejection)
    assert nested.field == "metadata.order.id"


def test_a_trace_number_given_twice_alike_is_trusted_but_twice_differently_is_not() -> None:
    alike = parse(
        b'{"type":"charge","trace_number":"T1","trace_number":"T1","msisdn":"08131234567","amount":"5"}'
    )
    assert isinstance(alike, Rejection)
    assert alike.trace_number == "T1"
    assert alike.field == "trace_number"
    differing = parse(
        b'{"type":"charge","trace_number":"T1","msisdn":"08131234567","amount":"5","trace_number":"T2"}'
    )
    assert isinstance(differing, DeadLetterReason)
    assert differing.reason == "duplicate_keys"


def test_a_review_decision_with_a_repeated_key_is_a_dead_letter() -> None:
    result = parse(
        b'{"type":"review_decision","trace_number":"T1","msisdn":"08131234567","outcome":"failed",'
        b'"outcome":"succeeded","decided_by":"ops","reason":"checked"}'
    )
    assert isinstance(result, DeadLetterReason)
    assert result.reason == "duplicate_keys"
    assert "outcome" in result.detail


def test_an_unknown_field_is_rejected_by_name() -> None:
    result = parse(orjson.dumps({**GOOD, "amount_cents": 500}))
    assert isinstance(result, Rejection)
    assert (result.field, result.rule) == ("amount_cents", "unknown_field")
    assert "amount_cents: unknown field" in result.detail


def test_a_hostile_field_name_is_quoted_back_bounded_and_escaped() -> None:
    result = parse(orjson.dumps({**GOOD, "\u202e\x00" + "k" * 5000: 1}), max_bytes=16_384)
    assert isinstance(result, Rejection)
    assert result.field.startswith("'\\u202e\\x00kkk")
    assert result.field.endswith("...")
    assert len(result.field) < 100


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"[" * 33 + b"]" * 33, "too_deep"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, "too_deep"),
        (b"[" * 5000 + b"]" * 5000, "too_deep"),
        (b'{"trace_number":"T1","n":' + b"9" * 41 + b"}", "number_too_large"),
        (b'{"trace_number":"T1","n":' + b"9" * 5000 + b"}", "number_too_large"),
        (b'{"trace_number":"T1","n":1e400}', "number_too_large"),
        (b'{"trace_number":"T1","n":NaN}', "not_json"),
        (b'{"trace_number":"T1","s":"\\ud800"}', "not_json"),
        (b'{"trace_number":"T1","s":"\xff"}', "not_json"),
        (b'\xef\xbb\xbf{"trace_number":"T1"}', "not_json"),
        (b'{"trace_number":"T1"} {"x":1}', "not_json"),
        (b"", "not_json"),
        (b"null", "not_a_command"),
    ],
)
def test_unreadable_json_is_a_dead_letter_with_its_reason(value: bytes, reason: str) -> None:
    result = parse(value, max_bytes=16_384)
    assert isinstance(result, DeadLetterReason)
    assert result.reason == reason


def test_a_nul_in_a_string_is_just_a_character() -> None:
    result = parse(orjson.dumps({**GOOD, "description": "a\x00b"}))
    assert isinstance(result, Parsed)
    assert result.command.description == "a\x00b"


def test_big_integers_in_metadata_are_kept_exactly() -> None:
    big = 2**100
    result = parse(
        b'{"type":"credit","trace_number":"T1","msisdn":"08131234567","amount":5,"metadata":{"n":%d}}' % big
    )
    assert isinstance(result, Parsed)
    assert result.command.metadata == {"n": big}


def test_a_bug_in_intake_costs_one_message_not_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(value: bytes) -> object:
        raise KeyError("a bug")

    monkeypatch.setattr("worker.pipeline.intake.read", broken)
    result = parse(orjson.dumps(GOOD))
    assert isinstance(result, DeadLetterReason)
    assert result.reason == "internal_error"
    assert "KeyError" in result.detail


def test_a_repeated_key_inside_a_value_that_was_itself_repeated_is_reported_by_its_outer_key() -> None:
    result = parse(
        b'{"type":"charge","trace_number":"T1","msisdn":"08131234567","amount":"5",'
        b'"metadata":{"trace_number":1,"trace_number":2},"metadata":{}}'
    )
    assert isinstance(result, Rejection)  # not mistaken for a repeated top-level trace_number
    assert result.field == "metadata"
