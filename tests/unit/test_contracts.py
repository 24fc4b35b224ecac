"""The message contracts as producers will meet them."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from worker.contracts import Command, event_id_for, format_amount
from worker.schema_export import DEFAULT_DIR, drift

BASE = {"type": "charge", "trace_number": "2016041312050101", "msisdn": "08131234567", "amount": "100000"}


def test_schema_files_match_the_models() -> None:
    assert drift(DEFAULT_DIR) == [], "run `ecash-worker schemas` and commit schemas/"


def test_schema_directory_is_the_repos() -> None:
    assert Path(__file__).resolve().parents[2] / "schemas" == DEFAULT_DIR


@pytest.mark.parametrize("amount", ["100000", 100000, "1500.50", "0.01", "999999999999.99"])
def test_valid_amounts(amount: object) -> None:
    command = Command.model_validate({**BASE, "amount": amount})
    assert command.amount == Decimal(str(amount))


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("-5", "greater than zero"),
        ("0", "greater than zero"),
        (100000.0, "never a float"),
        ("1.001", "2 decimal"),
        ("1234567890123", "12 digits"),
        ("NaN", "finite"),
        (True, "decimal string or an integer"),
    ],
)
def test_invalid_amounts_say_why(amount: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Command.model_validate({**BASE, "amount": amount})


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
    command = Command.model_validate({**BASE, "amount": "1E+5"})
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
    assert addresses == {"ecash.commands", "ecash.results", "ecash.commands.dlq", "ecash.review"}
