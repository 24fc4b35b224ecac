"""The message contracts as producers will meet them."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from tests.contract_examples import Example, examples, unmarked_json_blocks
from worker.contracts import (
    CONTRACTS,
    READ_BY_THE_WORKER,
    Command,
    DeadLetter,
    Result,
    ReviewRecord,
    event_id_for,
    format_amount,
)
from worker.pipeline.intake import Decision, Parsed, parse_command
from worker.schema_export import DEFAULT_DIR, drift

BASE = {"type": "charge", "trace_number": "2016041312050101", "msisdn": "08131234567", "amount": "100000"}


def test_schema_files_match_the_models() -> None:
    assert drift(DEFAULT_DIR) == [], "run `ecash-worker schemas` and commit schemas/"


def test_schema_directory_is_the_repos() -> None:
    assert Path(__file__).resolve().parents[2] / "schemas" == DEFAULT_DIR


@pytest.mark.parametrize(
    "amount", ["100000", 100000, "1500.50", "1500.5", "0.01", "999999999.99", 999999999, "0007"]
)
def test_valid_amounts(amount: object) -> None:
    command = Command.model_validate({**BASE, "amount": amount})
    assert command.amount == Decimal(str(amount))


@pytest.mark.parametrize(
    ("amount", "rule"),
    [
        ("-5", "amount_sign"),
        ("+5", "amount_sign"),
        ("0", "amount_not_positive"),
        ("0.00", "amount_not_positive"),
        (0, "amount_not_positive"),
        (-1, "amount_not_positive"),
        (100000.0, "amount_float"),
        (1e30, "amount_float"),
        ("1.001", "amount_scale"),
        ("1.000", "amount_scale"),
        ("1000000000", "amount_too_large"),
        (1000000000, "amount_too_large"),
        (10**40, "amount_too_large"),
        ("1234567890123", "amount_too_long"),
        ("123456789012345678901234567890", "amount_too_long"),
        ("1" * 100_000, "amount_too_long"),
        ("1e400", "amount_exponent"),
        ("1e30", "amount_exponent"),
        ("1E+5", "amount_exponent"),
        ("NaN", "amount_not_finite"),
        ("-Infinity", "amount_not_finite"),
        ("sNaN", "amount_not_finite"),
        ("12,5", "amount_format"),
        (" 5", "amount_format"),
        (".5", "amount_format"),
        ("5.", "amount_format"),
        ("\u0661\u0660", "amount_format"),  # Arabic-Indic digits: Decimal() would take them
        ("", "amount_format"),
        (True, "amount_type"),
        (None, "amount_type"),
        ([1], "amount_type"),
        ({"value": 1}, "amount_type"),
    ],
)
def test_invalid_amounts_name_the_rule_they_break(amount: object, rule: str) -> None:
    with pytest.raises(ValidationError) as info:
        Command.model_validate({**BASE, "amount": amount})
    (error,) = info.value.errors()
    assert error["loc"] == ("amount",)
    assert error["type"] == rule


@pytest.mark.parametrize(
    ("amount", "rule"),
    [
        (Decimal("1E+400"), "amount_too_large"),
        (Decimal("123456789012345678901234567890"), "amount_too_large"),
        (Decimal("1.005"), "amount_scale"),
        (Decimal("1E-400"), "amount_scale"),
        (Decimal("NaN"), "amount_not_finite"),
        (Decimal("-Infinity"), "amount_not_finite"),
        (Decimal("-1"), "amount_not_positive"),
    ],
)
def test_a_decimal_from_code_follows_the_same_rules_and_never_raises_arithmetic_errors(
    amount: Decimal, rule: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Command(**{**BASE, "amount": amount})
    assert info.value.errors()[0]["type"] == rule


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trace_number", ""),
        ("trace_number", "x" * 33),
        ("trace_number", "abc-123"),
        ("msisdn", "0813"),
        ("msisdn", "0813123456a"),
        ("type", "refund"),
        ("expires_at", "2026-01-01T00:00:00"),
        ("expires_at", "9999-12-31T23:59:59-23:59"),
        ("expires_at", "0001-01-01T00:00:00+23:59"),
        ("expires_at", 1e20),
        ("unknown_field", 1),
    ],
)
def test_invalid_fields_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Command.model_validate({**BASE, field: value})


def test_amount_goes_out_as_a_plain_decimal_string() -> None:
    assert format_amount(Decimal("1E+5")) == "100000"
    assert format_amount(Decimal("100000.00")) == "100000"
    assert format_amount(Decimal("1500.5")) == "1500.50"
    command = Command.model_validate({**BASE, "amount": "100000.00"})
    assert command.model_dump(mode="json")["amount"] == "100000"


def test_event_id_is_stable_per_command_message() -> None:
    assert event_id_for("T1", 3, 10) == event_id_for("T1", 3, 10)
    assert event_id_for("T1", 3, 10) != event_id_for("T1", 3, 11)


def test_asyncapi_names_every_schema_file_and_each_exists() -> None:
    import yaml

    document = yaml.safe_load((DEFAULT_DIR / "asyncapi.yaml").read_text())
    refs = {m["payload"]["$ref"] for m in document["components"]["messages"].values()}
    assert refs == {f"./{name}" for name in (p.name for p in DEFAULT_DIR.glob("*.schema.json"))}
    for ref in refs:
        assert (DEFAULT_DIR / ref).exists()
    addresses = {c["address"] for c in document["channels"].values()}
    assert addresses == {
        "ecash.commands", "ecash.review.decisions", "ecash.results", "ecash.commands.dlq", "ecash.review",
    }  # fmt: skip


# --- the documented examples, the schemas' shape -----------------------------------------------------------

EXAMPLES = examples()


def test_every_json_block_of_the_contracts_page_is_a_checked_example() -> None:
    assert unmarked_json_blocks() == 0, (
        "mark each ```json block of docs/contracts.md with <!-- example: NAME -->"
    )
    assert {e.contract for e in EXAMPLES} == set(CONTRACTS)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id)
def test_each_example_is_valid_under_its_schema_and_its_model(example: Example) -> None:
    schema = json.loads((DEFAULT_DIR / f"{example.contract}.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(example.message)]
    assert errors == []
    model = CONTRACTS[example.contract].model_validate(example.message)
    if example.contract in READ_BY_THE_WORKER:
        # what the worker reads: the intake takes it as it is (a command or a decision, never a rejection)
        intake = parse_command(json.dumps(example.message).encode(), max_bytes=65536)
        assert isinstance(intake, Parsed | Decision), intake
    else:
        # what the worker writes: the example is exactly what it publishes for that model
        assert model.model_dump(mode="json") == example.message


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_the_schemas_are_draft_07_without_any_of_and_with_a_version(name: str) -> None:
    text = (DEFAULT_DIR / f"{name}.schema.json").read_text()
    schema = json.loads(text)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    assert "anyOf" not in text
    assert "$defs" not in text
    assert "prefixItems" not in text
    assert schema["properties"]["schema_version"]["type"] == "integer"
    assert ("additionalProperties" in schema) == (name in READ_BY_THE_WORKER)


def test_a_nullable_named_type_is_left_out_rather_than_written_as_null() -> None:
    """The schemas give a nullable enum as a plain reference, not required: the model never writes null."""
    assert Result.model_fields["type"].exclude_if is not None
    assert ReviewRecord.model_fields["closed_outcome"].exclude_if is not None
    assert "type" not in Result.model_validate(_rejected_without_type()).model_dump(mode="json")


def _rejected_without_type() -> dict[str, Any]:
    return {
        "event_id": "e",
        "trace_number": "T1",
        "type": None,
        "msisdn": None,
        "amount": None,
        "outcome": "rejected",
        "resolved_by": "response",
        "detail": "d",
        "completed_at": "2026-01-01T00:00:00Z",
    }


def test_metadata_values_come_back_as_strings_and_valid_commands_keep_their_meaning() -> None:
    command = Command.model_validate({**BASE, "metadata": {"n": 1, "s": "x", "o": {"a": [1, None]}}})
    assert command.metadata == {"n": 1, "s": "x", "o": {"a": [1, None]}}  # accepted as before version 1
    assert command.model_dump(mode="json")["metadata"] == {"n": "1", "s": "x", "o": '{"a":[1,null]}'}


def test_a_command_of_another_version_is_refused_naming_the_rule() -> None:
    with pytest.raises(ValidationError) as info:
        Command.model_validate({**BASE, "schema_version": 2})
    assert info.value.errors()[0]["type"] == "schema_version_unsupported"
    assert Command.model_validate({**BASE, "schema_version": 1}) == Command.model_validate(BASE)


def test_dead_letter_headers_are_objects_and_old_pairs_are_still_read() -> None:
    letter = DeadLetter.model_validate(
        {
            "reason": "not_json: x",
            "topic": "t",
            "partition": 0,
            "offset": 1,
            "key_b64": None,
            "value_b64": None,
            "headers": [["h", "dg=="]],
            "dead_lettered_at": "2026-01-01T00:00:00Z",
        }
    )
    assert letter.model_dump(mode="json")["headers"] == [{"name": "h", "value_b64": "dg=="}]


def test_published_contracts_ignore_unknown_fields() -> None:
    result = Result.model_validate({**_rejected_without_type(), "added_in_1_1": "x"})
    assert "added_in_1_1" not in result.model_dump()


def test_a_review_record_from_a_later_minor_version_is_still_read() -> None:
    (example,) = [e for e in EXAMPLES if e.contract == "review_record"]
    later = {**example.message, "added_in_1_1": 1}
    later["command"] = {**later["command"], "added_in_1_1": "x"}
    record = ReviewRecord.model_validate(later)
    assert record.model_dump(mode="json") == example.message
